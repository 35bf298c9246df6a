//! `retryFetch(input, init)`: the request read once, replayed on every attempt and route.
//!
//! A string or absent body (what the SDKs send) is passed through as given: no copy. Any other
//! body — ArrayBuffer, typed array, Blob, FormData, URLSearchParams, ReadableStream, or a
//! `Request` as input — is read once into bytes through `new Request(input, init)`, so every
//! attempt sends the same bytes (FormData's multipart boundary included).

use alloc::rc::Rc;
use alloc::{borrow::ToOwned, boxed::Box, string::String, vec, vec::Vec};
use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;

use js_sys::{JsString, Object, Reflect, Uint8Array, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers as JsHeaders, Request, RequestInit, Response};

use super::drive::{drive, AttemptResult, Attempts, Client, Held};
use super::errors::got;
use super::errors::{self, type_error};
use super::host::{self, AttemptSignal};
use super::options::Fallback;
use crate::policy::classify::Observation;
use crate::policy::engine::Route;
use crate::policy::{hints, Headers};
use crate::text::cat;

/// Methods that are safe to repeat after a timeout (RFC 9110 §9.2.2).
const IDEMPOTENT: [&str; 5] = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"];

pub async fn fetch(client: &Client, input: JsValue, init: JsValue) -> Result<JsValue, JsValue> {
    let mut call = Call::new(client, input, init).await?;
    let signal = call.signal.clone();
    let idempotent = call.idempotent();
    drive(client, &mut call, idempotent, signal.as_ref()).await
}

struct Call<'c> {
    client: &'c Client,
    url: String,
    method: String,
    /// The caller's headers as given (any HeadersInit, or undefined), sent as is on the primary.
    headers: JsValue,
    /// The same, parsed: for the idempotency check and the fallback routes' copies.
    parsed_headers: Option<JsHeaders>,
    origin: String,
    /// A string, a Uint8Array, or undefined.
    body: JsValue,
    /// The caller's init (redirect, credentials, cf, dispatcher … carried as is).
    base: Object,
    /// The primary route can send `base` unchanged: no body to replay as bytes.
    fast: bool,
    signal: Option<AbortSignal>,
    /// Per route, built on first use: the URL and init to send.
    prepared: Vec<Option<(JsValue, Object)>>,
    models: Vec<Option<String>>,
}

impl<'c> Call<'c> {
    async fn new(client: &'c Client, input: JsValue, init: JsValue) -> Result<Call<'c>, JsValue> {
        let init_obj: Object = if init.is_undefined() || init.is_null() {
            Object::new()
        } else if init.is_object() {
            init.clone().unchecked_into()
        } else {
            return Err(type_error("init must be an object"));
        };
        let field = |k: &'static str| errors::get(&init_obj, k);
        // What fetch itself would reject is rejected here, at once, rather than retried.
        let given_signal = match field("signal") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(
                v.dyn_into::<AbortSignal>()
                    .map_err(|v| type_error(&cat!("init.signal must be an AbortSignal (", got(&v), ")")))?,
            ),
        };
        // Never mutated: each route's init is a copy with method, headers, body and signal set.
        let mut base = init_obj.clone();
        let body = field("body");
        let is_request = input.is_instance_of::<Request>();
        let fast = !is_request && (body.is_undefined() || body.is_null() || body.is_string());
        let (url, origin, method, headers, body, signal) = if fast {
            let url = host::absolute_url(&host::string_of(&input)?)?;
            let method = field("method").as_string().unwrap_or_else(|| "GET".into());
            let body = if body.is_null() { JsValue::UNDEFINED } else { body };
            if !body.is_undefined() && (method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) {
                return Err(type_error("Request with GET/HEAD method cannot have body."));
            }
            (url.href(), url.origin(), method, field("headers"), body, given_signal)
        } else {
            let req = if is_request {
                Request::new_with_request_and_init(input.unchecked_ref(), init_obj.unchecked_ref::<RequestInit>())?
            } else {
                let url = host::string_of(&input)?;
                Request::new_with_str_and_init(&url, init_obj.unchecked_ref::<RequestInit>())?
            };
            if is_request && field("redirect").is_undefined() {
                base = host::copy_of(&init_obj)?;
                errors::set(&base, "redirect", &errors::get(&req, "redirect"));
            }
            let body = match req.body() {
                Some(_) => Uint8Array::new(&JsFuture::from(req.array_buffer()?).await?).into(),
                None => JsValue::UNDEFINED,
            };
            let signal = given_signal.or_else(|| is_request.then(|| req.signal()));
            let origin = host::absolute_url(&req.url())?.origin();
            (req.url(), origin, req.method(), req.headers().into(), body, signal)
        };
        // Checked once: fetch would reject bad headers on every attempt.
        let parsed_headers = match &headers {
            h if h.is_undefined() || h.is_null() => None,
            h => Some(JsHeaders::new_with_str_sequence_sequence(h)?),
        };
        let routes = 1 + client.opts.fallbacks.len();
        let primary = primary_model(&body);
        let mut models = vec![primary.clone()];
        models.extend(client.opts.fallbacks.iter().map(|f| f.model.clone().or_else(|| primary.clone())));
        Ok(Call {
            client,
            url,
            origin,
            method,
            headers,
            parsed_headers,
            body,
            base,
            fast,
            signal,
            prepared: vec![None; routes],
            models,
        })
    }

    fn idempotent(&self) -> bool {
        IDEMPOTENT.iter().any(|m| m.eq_ignore_ascii_case(&self.method))
            || self.parsed_headers.as_ref().is_some_and(|h| h.has("idempotency-key").unwrap_or(false))
    }

    /// The origin `route` sends to.
    fn origin_of(&self, route: usize) -> &str {
        match self.client.fallback(route) {
            Some(Fallback { url: Some(u), .. }) => &u.origin,
            _ => &self.origin,
        }
    }

    fn url_of(&self, route: usize) -> &str {
        match self.client.fallback(route) {
            Some(Fallback { url: Some(u), .. }) => &u.href,
            _ => &self.url,
        }
    }

    /// The URL and init for `route`, built once per call.
    fn prepare(&mut self, route: usize) -> Result<(JsValue, Object), JsValue> {
        if let Some(Some(p)) = self.prepared.get(route) {
            return Ok(p.clone());
        }
        let init = host::copy_of(&self.base)?;
        let set = |k: &'static str, v: &JsValue| {
            if !v.is_undefined() {
                errors::set(&init, k, v);
            }
        };
        let url = self.url_of(route).to_owned();
        let fallback = self.client.fallback(route);
        if fallback.is_some() || !self.fast {
            set("method", &JsValue::from_str(&self.method));
        }
        match fallback {
            None if self.fast => {}
            None => {
                set("headers", &self.headers);
                set("body", &self.body);
            }
            Some(f) => {
                let headers = match &self.parsed_headers {
                    Some(h) => JsHeaders::new_with_headers(h)?,
                    None => JsHeaders::new()?,
                };
                if self.origin_of(route) != self.origin {
                    for name in &self.client.opts.sensitive {
                        if !f.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                            headers.delete(name)?;
                        }
                    }
                }
                for (k, v) in &f.headers {
                    headers.set(k, v)?;
                }
                set("headers", &headers);
                match &f.model {
                    Some(model) => set("body", &with_model(&self.body, model, route - 1)?),
                    None => set("body", &self.body),
                }
            }
        }
        let p = (JsValue::from_str(&url), init);
        if let Some(slot) = self.prepared.get_mut(route) {
            *slot = Some(p.clone());
        }
        Ok(p)
    }
}

impl Attempts for Call<'_> {
    fn routes(&self) -> Vec<Route> {
        let cfg = &self.client.opts.cfg;
        let mut routes = vec![Route::new(key(&self.origin, self.models[0].as_deref()), cfg.max_attempts)];
        for (i, f) in self.client.opts.fallbacks.iter().enumerate() {
            let attempts = f.max_attempts.unwrap_or(cfg.max_attempts);
            routes.push(Route::new(key(self.origin_of(i + 1), self.models[i + 1].as_deref()), attempts));
        }
        routes
    }

    fn model(&self, route: usize) -> Option<String> {
        self.models.get(route).cloned().flatten()
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
        let (url, init) = self.prepare(route)?;
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
                None => type_error(&cat!("fetch resolved to a non-Response (", got(&v), ")")),
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
    if status < 400 {
        // A success is final whatever its headers say: skip the lookups on the hot path.
        return Observation::Response { status, headers, body: None };
    }
    let h = r.headers();
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

/// The breaker key of a route: its origin and model.
fn key(origin: &str, model: Option<&str>) -> String {
    match model {
        Some(m) => cat!(origin, " ", m),
        None => origin.to_owned(),
    }
}

/// The top-level `"model"` of a JSON string body, found without parsing the whole prompt.
fn primary_model(body: &JsValue) -> Option<String> {
    let s: &JsString = body.dyn_ref()?;
    let at = s.index_of("\"model\"", 0);
    if at < 0 {
        return None;
    }
    let rest = String::from(s.slice(at as u32 + 7, at as u32 + 300));
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let (model, _) = rest.split_once('"')?;
    (!model.contains('\\')).then(|| model.to_owned())
}

/// The body with its top-level `"model"` replaced.
fn with_model(body: &JsValue, model: &str, route: usize) -> Result<JsValue, JsValue> {
    let bad = || type_error(&cat!("fallbacks[", route, "].model needs a JSON object request body"));
    let text = match body.as_string() {
        Some(t) => t,
        None => match body.dyn_ref::<Uint8Array>() {
            Some(bytes) => String::from_utf8(bytes.to_vec()).map_err(|_| bad())?,
            None => return Err(bad()),
        },
    };
    let json = JSON::parse(&text).map_err(|_| bad())?;
    if !json.is_object() || js_sys::Array::is_array(&json) {
        return Err(bad());
    }
    Reflect::set(&json, &"model".into(), &model.into())?;
    Ok(JSON::stringify(&json)?.into())
}
