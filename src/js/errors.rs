//! The errors the API throws, and the plain objects it hands to `onEvent` and `onExhausted`:
//! built by `values.js` from what the engine recorded. Events and reports carry no header, body
//! or full URL (a breaker key names a route's origin and model only): nothing secret can leak.

use alloc::vec::Vec;
use core::cell::RefCell;

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;

use super::host::Local;
use super::values;
use crate::policy::classify::Reason;
use crate::policy::engine::{Event, Report, WaitCause};

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
#[cfg(feature = "sim")]
pub fn obj(fields: &[(&'static str, JsValue)]) -> js_sys::Object {
    let o = js_sys::Object::new();
    for (k, v) in fields.iter().filter(|(_, v)| !v.is_undefined()) {
        set(&o, k, v);
    }
    o
}

/// The call failed without a response to hand back (network errors, timeouts, the deadline).
pub fn retry_error(reason: Reason, report: &Report, cause: &JsValue, report_js: &JsValue) -> JsValue {
    let status = report.attempts.iter().rev().find_map(|a| a.status);
    values::retry_error_js(report.attempts.len() as u32, reason.as_str(), status, cause, report_js)
}

/// The event as `onEvent` gets it; `names` is the call's (its id, each route's model).
pub fn event(e: &Event, names: &JsValue) -> JsValue {
    match e {
        Event::Attempt { attempt, route } => values::attempt_event(names, *route as u32, *attempt),
        Event::Commit { route, attempt, first_token_ms } => {
            values::commit_event(names, *route as u32, *attempt, *first_token_ms as f64)
        }
        Event::Wait { route, delay_ms, cause } => values::wait_event(
            names,
            *route as u32,
            *delay_ms as f64,
            cause.as_str(),
            matches!(cause, WaitCause::Hint(_)),
        ),
        Event::Retry { attempt, route, delay_ms, reason, status, cause } => values::retry_event(
            names,
            *route as u32,
            *attempt,
            *delay_ms as f64,
            reason.as_str(),
            *status,
            cause.as_str(),
            matches!(cause, WaitCause::Hint(_)),
        ),
        Event::Fallback { from, to, reason, status } => {
            values::fallback_event(names, *from as u32, *to as u32, reason.as_str(), *status)
        }
        Event::Breaker { key, from, to } => values::breaker_event(names, key, from.as_str(), to.as_str()),
        Event::Skip { route, retry_in_ms, cause } => {
            values::skip_event(names, *route as u32, *retry_in_ms as f64, cause.as_str())
        }
        Event::GiveUp { reason, attempts, status } => values::give_up_event(names, reason.as_str(), *attempts, *status),
        Event::Success { attempts, route, total_ms, fallback } => {
            values::success_event(names, *route as u32, *attempts, *total_ms as f64, *fallback)
        }
    }
}

/// The report as `retryReport` and `onExhausted` hand it out; kept for `ended` (what the call
/// returned or threw), for `retryReport(ended)`.
pub fn report(r: &Report, names: &JsValue, ended: &JsValue) -> JsValue {
    let attempts: Array = r
        .attempts
        .iter()
        .map(|a| {
            let waited = a.waited_ms as f64;
            values::report_attempt(names, a.route as u32, a.status, a.reason.as_str(), waited, a.in_stream)
        })
        .collect();
    values::report_js(
        names,
        attempts,
        r.total_wait_ms as f64,
        r.ended_ms.saturating_sub(r.started_ms) as f64,
        r.served_by.map(|i| i as u32),
        r.fallback,
        r.skipped.iter().map(|&i| i as u32).collect(),
        r.first_token_ms.map(|ms| ms as f64),
        ended,
    )
}
