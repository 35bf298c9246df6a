//! The errors the API throws, and the plain objects it hands to `onEvent` and `onExhausted`.
//!
//! Errors are ordinary `Error` objects with a stable `name` and extra fields, so the JS side's
//! brand checks (`isRetryError`, and `instanceof RetryError` through `Symbol.hasInstance`) work
//! across bundle copies. Events and reports carry no header, body or full URL (a breaker key
//! names a route's origin and model only): nothing secret can leak through them.

use alloc::{string::String, vec::Vec};
use core::cell::RefCell;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::host::Local;
use crate::policy::classify::Reason;
use crate::policy::engine::{Event, Report};
use crate::text::cat;

pub fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

pub fn range_error(message: &str) -> JsValue {
    js_sys::RangeError::new(message).into()
}

/// Keys as JS strings, made once: decoding the same names out of wasm on every report and
/// event was a measurable part of a call's overhead.
static KEYS: Local<RefCell<Vec<(*const u8, JsValue)>>> = Local::new(|| RefCell::new(Vec::new()));

/// Runs `f` with `k` as a cached JS string.
pub fn with_key<R>(k: &'static str, f: impl FnOnce(&JsValue) -> R) -> R {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let i = match keys.iter().position(|(p, _)| *p == k.as_ptr()) {
            Some(i) => i,
            None => {
                keys.push((k.as_ptr(), JsValue::from_str(k)));
                keys.len() - 1
            }
        };
        f(&keys[i].1)
    })
}

/// `o[k]`, or undefined when reading it throws.
pub fn get(o: &JsValue, k: &'static str) -> JsValue {
    with_key(k, |key| Reflect::get(o, key)).unwrap_or(JsValue::UNDEFINED)
}

/// `o[k] = v`, ignoring a failure (our own objects do not fail).
pub fn set(o: &JsValue, k: &'static str, v: &JsValue) {
    let _ = with_key(k, |key| Reflect::set(o, key, v));
}

/// A plain object from key/value pairs; undefined values are left out.
pub fn obj(fields: &[(&'static str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in fields.iter().filter(|(_, v)| !v.is_undefined()) {
        set(&o, k, v);
    }
    o
}

fn opt<T: Into<JsValue>>(v: Option<T>) -> JsValue {
    v.map_or(JsValue::UNDEFINED, Into::into)
}

fn named_error(name: &str, message: &str, fields: &[(&'static str, JsValue)]) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name(name);
    for (k, v) in fields {
        set(&e, k, v);
    }
    e.into()
}

/// The call failed without a response to hand back (network errors, timeouts, the deadline).
pub fn retry_error(reason: Reason, report: &Report, cause: &JsValue, report_js: &JsValue) -> JsValue {
    let attempts = report.attempts.len();
    let status = report.attempts.iter().rev().find_map(|a| a.status);
    let plural = if attempts == 1 { "" } else { "s" };
    let message = cat!("request failed after ", attempts, " attempt", plural, ": ", reason.as_str());
    named_error(
        "RetryError",
        &message,
        &[
            ("attempts", (attempts as u32).into()),
            ("reason", reason.as_str().into()),
            ("status", opt(status)),
            ("cause", cause.clone()),
            ("report", report_js.clone()),
        ],
    )
}

pub fn circuit_open_error(retry_in_ms: u64, report_js: &JsValue) -> JsValue {
    let message = cat!("every route's circuit breaker is open; retry in ", retry_in_ms, " ms");
    named_error(
        "CircuitOpenError",
        &message,
        &[("retryInMs", (retry_in_ms as f64).into()), ("report", report_js.clone())],
    )
}

/// Route `i`'s model name, for events and reports.
pub type ModelOf<'a> = &'a dyn Fn(usize) -> Option<String>;

pub fn event(e: &Event, model: ModelOf) -> JsValue {
    let o = match e {
        Event::Retry { attempt, route, delay_ms, reason, status, cause } => obj(&[
            ("type", "retry".into()),
            ("attempt", (*attempt).into()),
            ("delayMs", (*delay_ms as f64).into()),
            ("reason", reason.as_str().into()),
            ("status", opt(*status)),
            (
                "hint",
                if matches!(cause, crate::policy::engine::WaitCause::Hint(_)) {
                    cause.as_str().into()
                } else {
                    JsValue::UNDEFINED
                },
            ),
            ("wait", cause.as_str().into()),
            ("route", (*route as u32).into()),
            ("model", opt(model(*route))),
        ]),
        Event::Fallback { from, to, reason, status } => obj(&[
            ("type", "fallback".into()),
            ("from", (*from as u32).into()),
            ("to", (*to as u32).into()),
            ("reason", reason.as_str().into()),
            ("status", opt(*status)),
            ("fromModel", opt(model(*from))),
            ("toModel", opt(model(*to))),
        ]),
        Event::Breaker { key, from, to } => obj(&[
            ("type", "breaker".into()),
            ("key", key.as_str().into()),
            ("from", from.as_str().into()),
            ("to", to.as_str().into()),
        ]),
        Event::Skip { route, retry_in_ms, cooling } => obj(&[
            ("type", "skip".into()),
            ("route", (*route as u32).into()),
            ("model", opt(model(*route))),
            ("reason", if *cooling { "cooling" } else { "circuit-open" }.into()),
            ("retryInMs", (*retry_in_ms as f64).into()),
        ]),
        Event::GiveUp { reason, attempts, status } => obj(&[
            ("type", "giveUp".into()),
            ("reason", reason.as_str().into()),
            ("attempts", (*attempts).into()),
            ("status", opt(*status)),
        ]),
        Event::Success { attempts, route, total_ms, fallback } => obj(&[
            ("type", "success".into()),
            ("attempts", (*attempts).into()),
            ("totalMs", (*total_ms as f64).into()),
            ("route", (*route as u32).into()),
            ("model", opt(model(*route))),
            ("fallback", (*fallback).into()),
        ]),
    };
    o.into()
}

pub fn report(r: &Report, model: ModelOf) -> JsValue {
    let attempts: Array = r
        .attempts
        .iter()
        .map(|a| {
            JsValue::from(obj(&[
                ("route", (a.route as u32).into()),
                ("model", opt(model(a.route))),
                ("status", opt(a.status)),
                ("reason", a.reason.as_str().into()),
                ("waitedMs", (a.waited_ms as f64).into()),
            ]))
        })
        .collect();
    let skipped: Array = r.skipped.iter().map(|&i| JsValue::from(i as u32)).collect();
    obj(&[
        ("attempts", attempts.into()),
        ("totalWaitMs", (r.total_wait_ms as f64).into()),
        ("durationMs", (r.ended_ms.saturating_sub(r.started_ms) as f64).into()),
        ("route", opt(r.served_by.map(|i| i as u32))),
        ("model", opt(r.served_by.and_then(model))),
        ("fallback", r.fallback.into()),
        ("skipped", skipped.into()),
    ])
    .into()
}

/// Describes a value for an error message: `got string "3"`, `got number 5`, `got object`.
pub fn got(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        return cat!("got string \"", s, "\"");
    }
    if let Some(n) = v.as_f64() {
        return cat!("got number ", n);
    }
    if let Some(b) = v.as_bool() {
        return cat!("got boolean ", if b { "true" } else { "false" });
    }
    if v.is_null() {
        return "got null".into();
    }
    cat!("got ", v.js_typeof().as_string().unwrap_or_default())
}
