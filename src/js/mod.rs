//! The wasm-bindgen layer: drives the pure engine against the JavaScript host.
//!
//! | module    | does                                                            |
//! |-----------|-----------------------------------------------------------------|
//! | `host`    | global `fetch`, timers, `AbortSignal`, clock, crypto randomness  |
//! | `options` | the checked options (from `options.js`) → config; cross-option rules |
//! | `drive`   | the loop that executes the engine's decisions                    |
//! | `fetch`   | `retryFetch`: request replay, fallback routes, credentials       |
//! | `run`     | `retry(fn)`: errors classified by shape                          |
//! | `errors`  | `RetryError`, `CircuitOpenError`, events and reports as objects  |
//!
//! The package's entry files (pkg-template) wrap [`RetryClient`] into `createRetryFetch` and
//! `retry`. Nothing here runs at module load.

use alloc::vec::Vec;
/// A small free-list allocator: the wasm is single-threaded and allocates little per call, so
/// dlmalloc's speed is not needed and its 7 KB are.
#[global_allocator]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    // SAFETY: wasm32-unknown-unknown without the atomics feature has exactly one thread.
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

mod drive;
mod errors;
mod fetch;
mod host;
mod options;
mod run;

use alloc::boxed::Box;
use alloc::rc::Rc;
use core::future::Future;
use core::pin::Pin;

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::AbortSignal;

use crate::policy::breaker::{Snapshot, State};
use crate::text::cat;
use drive::Client;
use errors::{obj, type_error};

/// One configured client. Its breakers and budget are shared by every call made through it.
#[wasm_bindgen]
pub struct RetryClient {
    inner: Rc<Client>,
}

#[wasm_bindgen]
impl RetryClient {
    /// `options` as `options.js` checked and flattened them; throws a RangeError naming the
    /// option when the options break a rule between them (e.g. `backoff.maxMs` < `initialMs`).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<RetryClient, JsValue> {
        let opts = options::read(&options)?;
        Ok(RetryClient {
            inner: Rc::new(Client::new(opts)),
        })
    }

    /// `fetch(input, init)` with retries; resolves to a Response as `fetch` does.
    pub fn fetch(&self, input: JsValue, init: JsValue) -> Promise {
        let client = self.inner.clone();
        promise(Box::pin(
            async move { fetch::fetch(&client, input, init).await },
        ))
    }

    /// Calls `fn({ attempt, signal, route })` with retries.
    pub fn run(&self, f: JsValue, signal: JsValue) -> Promise {
        let client = self.inner.clone();
        promise(Box::pin(async move {
            let f: Function = f.dyn_into().map_err(|v| {
                type_error(&cat!(
                    "retry: fn must be a function (",
                    errors::got(&v),
                    ")"
                ))
            })?;
            let signal = match signal.dyn_into::<AbortSignal>() {
                Ok(s) => Some(s),
                Err(v) if v.is_undefined() => None,
                Err(v) => {
                    return Err(type_error(&cat!(
                        "signal must be an AbortSignal (",
                        errors::got(&v),
                        ")"
                    )))
                }
            };
            run::run(&client, f, signal).await
        }))
    }

    /// The breakers' state as plain JSON-safe data, to persist (e.g. in Workers KV).
    #[wasm_bindgen(js_name = exportState)]
    pub fn export_state(&self) -> JsValue {
        let breakers = Object::new();
        for (key, s) in self.inner.shared.borrow().snapshot() {
            let entry = obj(&[
                ("state", s.state.as_str().into()),
                ("failures", s.failures.into()),
                ("openUntil", (s.open_until_ms as f64).into()),
                ("cooledUntil", (s.cooled_until_ms as f64).into()),
            ]);
            let _ = Reflect::set(&breakers, &key.into(), &entry);
        }
        obj(&[("version", 1.into()), ("breakers", breakers.into())]).into()
    }

    /// Restores what `exportState` returned (from this or another instance).
    #[wasm_bindgen(js_name = restoreState)]
    pub fn restore_state(&self, state: JsValue) -> Result<(), JsValue> {
        let bad = |what: &str| type_error(&cat!("restoreState: ", what));
        let breakers =
            Reflect::get(&state, &"breakers".into()).map_err(|_| bad("state must be an object"))?;
        if !breakers.is_object() {
            return Err(bad("state.breakers must be an object"));
        }
        let mut restored = Vec::new();
        for (key, v) in host::entries_of(&breakers)? {
            let field = |k: &str| {
                Reflect::get(&v, &k.into())
                    .ok()
                    .and_then(|x| x.as_f64())
                    .filter(|x| x.is_finite() && *x >= 0.0)
            };
            let state = Reflect::get(&v, &"state".into())
                .ok()
                .and_then(|s| s.as_string())
                .and_then(|s| State::parse(&s));
            let state = state.ok_or_else(|| {
                bad(&cat!(
                    "breakers[\"",
                    key,
                    "\"].state must be \"closed\", \"open\" or \"half-open\""
                ))
            })?;
            restored.push((
                key,
                Snapshot {
                    state,
                    failures: field("failures").unwrap_or(0.0) as u32,
                    open_until_ms: field("openUntil").unwrap_or(0.0) as u64,
                    cooled_until_ms: field("cooledUntil").unwrap_or(0.0) as u64,
                },
            ));
        }
        let mut shared = self.inner.shared.borrow_mut();
        for (key, snapshot) in restored {
            shared.restore(key, snapshot);
        }
        Ok(())
    }
}

/// One promise adapter for both kinds of call (one copy of the task code in the wasm).
fn promise(call: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>) -> Promise {
    future_to_promise(call)
}

/// The report of what a call returned or threw: attempts, waits, which route served it.
#[wasm_bindgen(js_name = retryReport)]
pub fn retry_report(value: JsValue) -> JsValue {
    drive::report_of(&value)
}

/// The demo page's retry-storm simulation (feature `sim`): `calls` concurrent calls through one
/// client with `options` against a provider admitting `capacityPerSec`, on a simulated clock.
#[cfg(feature = "sim")]
#[wasm_bindgen(js_name = simulateStorm)]
pub fn simulate_storm(
    options: JsValue,
    calls: u32,
    capacity_per_sec: u32,
    latency_ms: u32,
    bucket_ms: u32,
    seed: f64,
) -> Result<JsValue, JsValue> {
    let opts = options::read(&options)?;
    let storm = crate::sim::Storm {
        calls: calls.min(10_000),
        capacity_per_sec,
        latency_ms: latency_ms.into(),
        bucket_ms: bucket_ms.into(),
    };
    let r = crate::sim::storm(&storm, &opts.cfg, seed as u64);
    let timeline: js_sys::Array = r.timeline.iter().map(|&n| JsValue::from(n)).collect();
    Ok(obj(&[
        ("requests", r.requests.into()),
        ("succeeded", r.succeeded.into()),
        ("failed", r.failed.into()),
        ("finishMs", (r.finish_ms as f64).into()),
        ("timeline", timeline.into()),
    ])
    .into())
}

/// The demo page's backoff planner (feature `sim`): `runs` sampled schedules of the waits
/// before each retry under `options` (no server hints).
#[cfg(feature = "sim")]
#[wasm_bindgen(js_name = backoffSchedules)]
pub fn backoff_schedules(options: JsValue, runs: u32, seed: f64) -> Result<JsValue, JsValue> {
    let opts = options::read(&options)?;
    let rows = crate::sim::schedules(&opts.cfg, runs.min(1000), seed as u64);
    Ok(rows
        .iter()
        .map(|row| {
            JsValue::from(
                row.iter()
                    .map(|&ms| JsValue::from(ms as f64))
                    .collect::<js_sys::Array>(),
            )
        })
        .collect::<js_sys::Array>()
        .into())
}
