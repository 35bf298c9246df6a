//! The errors the API throws, and the plain objects it hands to `onEvent` and `onExhausted`:
//! built by `report.js` from what the engine recorded. Events and reports carry no header, body
//! or full URL (a breaker key names a route's origin and model only): nothing secret can leak.

use alloc::vec::Vec;
use core::cell::RefCell;

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use super::host::Global;
use super::values;
use crate::policy::classify::Reason;
use crate::policy::engine::{AttemptRecord, Event, Report, WaitCause};

pub fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

pub fn range_error(message: &str) -> JsValue {
    js_sys::RangeError::new(message).into()
}

/// Keys as JS strings, made once: decoding the same names out of wasm on every report and
/// event was a measurable part of a call's overhead.
static KEYS: Global<RefCell<Vec<(*const u8, JsValue)>>> = Global::new(RefCell::new(Vec::new()));

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
#[cfg(feature = "sim")]
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
/// Errors cross as numbers (`report.js` `error`), as events do (see [`event`]).
pub fn retry_error(reason: Reason, report: &Report, cause: &JsValue, report_js: &JsValue) -> JsValue {
    let status = report.attempts.iter().rev().find_map(|a| a.status);
    let f = [0.0, report.attempts.len() as f64, reason as u8 as f64, opt(status.map(u64::from))];
    values::error(report_js, &f, cause)
}

/// Nothing was sent: no route could be tried within the deadline; `reason` is what held the
/// soonest, `retry_in_ms` when it frees.
pub fn circuit_open_error(retry_in_ms: u64, reason: Reason, report_js: &JsValue) -> JsValue {
    values::error(report_js, &[1.0, retry_in_ms as f64, reason as u8 as f64], &JsValue::UNDEFINED)
}

/// The event as `onEvent` gets it; `names` is the call's (its id, each route's model). One
/// binding for every kind, as numbers and one string (`report.js` `event`): `[kind, …]` with
/// reasons as `Reason::ALL` indexes, breaker states as `State` indexes, -1 for no status, 1 for
/// true; the text is the wait's cause (made once per cause), or a breaker event's key.
pub fn event(e: &Event, names: &JsValue) -> JsValue {
    let status = |s: Option<u16>| opt(s.map(u64::from));
    let hint = |c: &WaitCause| f64::from(u8::from(matches!(c, WaitCause::Hint(_))));
    let cause_js = |c: &WaitCause| with_key(c.as_str(), JsValue::clone);
    let none = JsValue::UNDEFINED;
    let (f, text): ([f64; 7], JsValue) = match e {
        Event::Retry { attempt, route, delay_ms, reason, status: s, cause } => (
            [0.0, *route as f64, f64::from(*attempt), *delay_ms as f64, *reason as u8 as f64, status(*s), hint(cause)],
            cause_js(cause),
        ),
        Event::Attempt { attempt, route } => ([1.0, *route as f64, f64::from(*attempt), 0.0, 0.0, 0.0, 0.0], none),
        Event::Commit { route, attempt, first_token_ms } => {
            ([2.0, *route as f64, f64::from(*attempt), *first_token_ms as f64, 0.0, 0.0, 0.0], none)
        }
        Event::Wait { route, delay_ms, cause } => {
            ([3.0, *route as f64, *delay_ms as f64, hint(cause), 0.0, 0.0, 0.0], cause_js(cause))
        }
        Event::Fallback { from, to, reason, status: s } => {
            ([4.0, *from as f64, *to as f64, *reason as u8 as f64, status(*s), 0.0, 0.0], none)
        }
        Event::Skip { route, retry_in_ms, cause } => {
            ([5.0, *route as f64, *retry_in_ms as f64, 0.0, 0.0, 0.0, 0.0], cause_js(cause))
        }
        Event::Breaker { key, from, to } => {
            ([6.0, *from as u8 as f64, *to as u8 as f64, 0.0, 0.0, 0.0, 0.0], JsValue::from_str(key))
        }
        Event::GiveUp { reason, attempts, status: s } => {
            ([7.0, *reason as u8 as f64, f64::from(*attempts), status(*s), 0.0, 0.0, 0.0], none)
        }
        Event::Success { attempts, route, total_ms, fallback } => (
            [8.0, *route as f64, f64::from(*attempts), *total_ms as f64, f64::from(u8::from(*fallback)), 0.0, 0.0],
            none,
        ),
    };
    values::event(names, &f, &text)
}

/// The report as flat numbers for `report.js`, which builds the object (`report`) or keeps
/// them until `retryReport` asks (`keepReport`): one crossing, no object on the happy path.
/// `[totalWaitMs, durationMs, route, fallback, firstTokenMs, attempts, (route, status, reason,
/// waitedMs, inStream) per attempt, skipped routes…]`, with -1 for none and reasons as
/// `Reason::ALL` indexes.
pub fn flat_report(r: &Report) -> Vec<f64> {
    let mut f = Vec::with_capacity(6 + 5 * r.attempts.len() + r.skipped.len());
    // From slices and by push: `extend` from an array is code of its own for each length.
    f.extend_from_slice(&report_head(r));
    for a in &r.attempts {
        f.extend_from_slice(&attempt_numbers(a));
    }
    for &i in &r.skipped {
        f.push(i as f64);
    }
    f
}

/// The report's first six numbers (see [`flat_report`]).
pub fn report_head(r: &Report) -> [f64; 6] {
    [
        r.total_wait_ms as f64,
        r.ended_ms.saturating_sub(r.started_ms) as f64,
        opt(r.served_by.map(|i| i as u64)),
        f64::from(u8::from(r.fallback)),
        opt(r.first_token_ms),
        r.attempts.len() as f64,
    ]
}

/// An attempt's five numbers in the flat report (see [`flat_report`]).
pub fn attempt_numbers(a: &AttemptRecord) -> [f64; 5] {
    [
        a.route as f64,
        opt(a.status.map(u64::from)),
        a.reason as u8 as f64,
        a.waited_ms as f64,
        f64::from(u8::from(a.in_stream)),
    ]
}

/// A number the flat report may lack: -1 for none.
fn opt(v: Option<u64>) -> f64 {
    v.map_or(-1.0, |v| v as f64)
}

static REASONS_SENT: Global<core::cell::Cell<bool>> = Global::new(core::cell::Cell::new(false));

/// Tells `report.js` the reasons' names, once per module instance, which reports, events and
/// errors then carry as indexes: called as a client is made, before any of its calls.
pub fn send_reasons() {
    REASONS_SENT.with(|sent| {
        if !sent.replace(true) {
            let mut list = alloc::string::String::new();
            for (i, reason) in Reason::ALL.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(reason.as_str());
            }
            values::set_reasons(&list);
        }
    });
}

/// The report object, for `onExhausted` and the errors that carry it.
pub fn report(r: &Report, names: &JsValue) -> JsValue {
    values::report_js(names, &flat_report(r))
}
