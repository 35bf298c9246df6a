//! `retry(fn)`: the application-level form. Each attempt calls `fn({ attempt, signal, route })`;
//! a thrown error is classified by its shape:
//!
//! | error                                                  | treated as                     |
//! |--------------------------------------------------------|--------------------------------|
//! | numeric `status` (OpenAI / Anthropic SDK errors)        | that HTTP status, with its `headers` (wait hints) and `error`/`code`/`type` (quota) |
//! | name containing `Timeout`                              | a timeout (idempotency rule)   |
//! | name containing `Connection`, a fetch `TypeError`, or a Node socket error code | a network error |
//! | anything else (a bug in `fn`)                          | rethrown at once, untouched    |

use alloc::{boxed::Box, string::String, vec, vec::Vec};
use core::future::Future;
use core::pin::Pin;

use js_sys::{Function, Object, Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortSignal;

use super::drive::{drive, AttemptResult, Attempts, Client, Held};
use super::errors::{self, obj};
use super::host::{self, AttemptSignal, Either};
use crate::policy::classify::Observation;
use crate::policy::engine::Route;
use crate::policy::{hints, Headers};
use crate::text::cat;

const NETWORK_CODES: [&str; 8] =
    ["ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ENETUNREACH"];

pub async fn run(client: &Client, f: Function, signal: Option<AbortSignal>) -> Result<JsValue, JsValue> {
    let signal = signal.or_else(|| client.opts.signal.clone());
    let mut call = FnCall { client, f, signal: signal.clone() };
    drive(client, &mut call, false, signal.as_ref()).await
}

struct FnCall<'c> {
    client: &'c Client,
    f: Function,
    signal: Option<AbortSignal>,
}

impl FnCall<'_> {
    fn route_info(&self, route: usize) -> JsValue {
        let mut fields = vec![("index", JsValue::from(route as u32))];
        if let Some(f) = self.client.fallback(route) {
            if let Some(m) = &f.model {
                fields.push(("model", m.into()));
            }
            if let Some(u) = &f.url {
                fields.push(("url", u.href.as_str().into()));
            }
            if !f.headers.is_empty() {
                let h = Object::new();
                for (k, v) in &f.headers {
                    let _ = Reflect::set(&h, &k.into(), &v.into());
                }
                fields.push(("headers", h.into()));
            }
        }
        obj(&fields).into()
    }

    async fn attempt_once(&mut self, route: usize, attempt: u32, timeout_ms: u64) -> AttemptResult {
        let sig = AttemptSignal::new(self.signal.as_ref())?;
        let ctx = obj(&[
            ("attempt", attempt.into()),
            ("signal", sig.signal.clone().into()),
            ("route", self.route_info(route)),
        ]);
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
    fn routes(&self) -> Vec<Route> {
        let cfg = &self.client.opts.cfg;
        let mut routes = vec![Route::new("#0", cfg.max_attempts)];
        for (i, f) in self.client.opts.fallbacks.iter().enumerate() {
            let key = match (&f.url, &f.model) {
                (None, None) => cat!("#", i + 1),
                (u, m) => cat!(u.as_ref().map_or("", |u| u.origin.as_str()), " ", m.as_deref().unwrap_or("")),
            };
            routes.push(Route::new(key, f.max_attempts.unwrap_or(cfg.max_attempts)));
        }
        routes
    }

    fn model(&self, route: usize) -> Option<String> {
        self.client.fallback(route).and_then(|f| f.model.clone())
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

/// Sorts a thrown error into an observation (see the module docs); `Err` rethrows it.
fn classify_error(e: JsValue) -> Result<(Observation, Held), JsValue> {
    if let Some(status) = errors::get(&e, "status").as_f64().filter(|s| (100.0..=599.0).contains(s)) {
        let obs = Observation::Response {
            status: status as u16,
            headers: headers_of(&errors::get(&e, "headers")),
            body: body_of(&e),
        };
        return Ok((obs, Held::Error { error: e, has_status: true }));
    }
    let name = errors::get(&e, "name").as_string().unwrap_or_default();
    let message = errors::get(&e, "message").as_string().unwrap_or_default().to_ascii_lowercase();
    let code = errors::get(&e, "code").as_string().unwrap_or_default();
    let cause_code = errors::get(&errors::get(&e, "cause"), "code").as_string().unwrap_or_default();
    let obs = if has(&name, "Timeout") || code == "UND_ERR_CONNECT_TIMEOUT" {
        Observation::Timeout
    } else if has(&name, "Connection")
        || NETWORK_CODES.contains(&code.as_str())
        || NETWORK_CODES.contains(&cause_code.as_str())
        || (name == "TypeError"
            && ["fetch failed", "failed to fetch", "networkerror", "load failed", "network connection"]
                .iter()
                .any(|m| has(&message, m)))
    {
        Observation::NetworkError
    } else {
        return Err(e);
    };
    Ok((obs, Held::Error { error: e, has_status: false }))
}

/// Substring test by byte windows (`str::contains` brings a two-way searcher into the wasm).
fn has(hay: &str, needle: &str) -> bool {
    hay.as_bytes().windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The hint headers of an SDK error: a `Headers`-like object with `get`, or a plain record.
fn headers_of(h: &JsValue) -> Headers {
    let mut out = Headers::new();
    if !h.is_object() {
        return out;
    }
    let get = errors::get(h, "get");
    if let Some(get) = get.dyn_ref::<Function>() {
        for name in hints::HEADER_NAMES {
            if let Ok(v) = get.call1(h, &JsValue::from_str(name)) {
                if let Some(v) = v.as_string() {
                    out.push(*name, v);
                }
            }
        }
        return out;
    }
    for (k, v) in host::entries_of(h).unwrap_or_default() {
        if let Some(v) = v.as_string().filter(|_| hints::HEADER_NAMES.iter().any(|n| n.eq_ignore_ascii_case(&k))) {
            out.push(k, v);
        }
    }
    out
}

/// The error's body as the classifier reads it: its `error`, `code` and `type` as JSON.
fn body_of(e: &JsValue) -> Option<String> {
    let o =
        obj(&[("code", errors::get(e, "code")), ("type", errors::get(e, "type")), ("error", errors::get(e, "error"))]);
    JSON::stringify(&o).ok().and_then(|s| s.as_string())
}
