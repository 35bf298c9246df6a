//! The wasm-bindgen layer: drives the pure engine against the JavaScript host.
//!
//! | module    | does                                                            |
//! |-----------|-----------------------------------------------------------------|
//! | `host`    | global `fetch`, timers, `AbortSignal`, clock, crypto randomness  |
//! | `options` | the checked options → config; cross-option rules                 |
//! | `drive`   | the loop that executes the engine's decisions                    |
//! | `task`    | the calls' task queue: each polled in a microtask, its result a promise |
//! | `heap`    | the wasm's allocator: size classes, each a free list                |
//! | `fetch`   | `retryFetch`: request replay, fallback routes, credentials       |
//! | `run`     | `retry(fn)`: errors classified by shape                          |
//! | `errors`  | `RetryError`, `CircuitOpenError`, events and reports              |
//! | `values`  | bindings to the JS half, one file per concern beside the Rust it serves:  |
//! |           | `options.js` checks, `request.js` reads a call's request and builds each route's, |
//! |           | `headers.js`, `stream.js`, `run.js` (what `fn` threw), `host.js`, `health.js`, |
//! |           | `names.js` (a call's shape), `report.js` (what users get), `values.js` (readers) |
//!
//! The package's entry files (pkg-template) wrap [`RetryClient`] into `createRetryFetch` and
//! `retry`. Nothing here runs at module load.

/// Size classes, each a free list (`heap.rs`): an allocation's cost does not grow with the calls
/// in flight, in less code than dlmalloc's 7 KB.
#[global_allocator]
static ALLOCATOR: heap::SizeClasses = heap::SizeClasses::new();

mod drive;
mod errors;
mod fetch;
mod heap;
mod host;
mod options;
mod run;
mod task;
mod values;

use alloc::boxed::Box;
use alloc::rc::Rc;

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;

use crate::policy::breaker::{Snapshot, State};
use drive::Client;

/// One configured client. Its breakers and budget are shared by every call made through it.
#[wasm_bindgen]
pub struct RetryClient {
    inner: Rc<Client>,
}

#[wasm_bindgen]
impl RetryClient {
    /// `options` of `createRetryFetch` (`for_retry` false) or `retry`/`createRetry`; throws a
    /// TypeError or RangeError naming the option that is wrong (see `options.js` and `Config::validate`).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, for_retry: bool) -> Result<RetryClient, JsValue> {
        let opts = options::read(&options, for_retry)?;
        errors::send_reasons();
        Ok(RetryClient { inner: Rc::new(Client::new(opts)) })
    }

    /// `fetch(input, init)` with retries; resolves to a Response as `fetch` does. `now`: the
    /// caller's `Date.now()`, so that the first decision reads no clock across the boundary.
    pub fn fetch(&self, input: JsValue, init: JsValue, now: f64) -> Promise {
        fetch::fetch(&self.inner, &input, &init, now).unwrap_or_else(|e| Promise::reject(&e))
    }

    /// Calls `fn({ attempt, signal, route })` with retries; `opts`: `{ signal, …per-call options }`.
    pub fn run(&self, f: JsValue, opts: JsValue) -> Promise {
        let client = self.inner.clone();
        task::promise(Box::pin(async move { run::run(&client, f, opts).await }))
    }

    /// The link to the health store of `options.health` (`health.js`), or undefined.
    #[wasm_bindgen(js_name = healthLink)]
    pub fn health_link(&self) -> JsValue {
        errors::get(&self.inner.opts.js, "health")
    }

    /// Adopts what the health store told: `[key, openedAt, openUntil, closedAt, cooledUntil, …]`.
    #[wasm_bindgen(js_name = adoptHealth)]
    pub fn adopt_health(&self, flat: Array) {
        drive::adopt(&self.inner, &flat);
    }

    /// The breakers' state, flat: `key, state, failures, openUntil, cooledUntil` per breaker
    /// (api.js shapes it into the JSON-safe object users persist, e.g. in Workers KV).
    #[wasm_bindgen(js_name = exportState)]
    pub fn export_state(&self) -> Array {
        let flat = Array::new();
        for (key, s) in self.inner.shared.borrow().snapshot() {
            values::push(&flat, &key.into());
            values::push(&flat, &s.state.as_str().into());
            values::push(&flat, &s.failures.into());
            values::push(&flat, &(s.open_until_ms as f64).into());
            values::push(&flat, &(s.cooled_until_ms as f64).into());
        }
        flat
    }

    /// Restores breakers from the flat form of [`Self::export_state`], as api.js checked it.
    /// An entry whose key or state is not a string it knows is skipped.
    #[wasm_bindgen(js_name = restoreState)]
    pub fn restore_state(&self, flat: Array) {
        let field = |i| flat.get(i).as_f64().filter(|x| x.is_finite() && *x >= 0.0).unwrap_or(0.0);
        let now = host::now_ms();
        let mut shared = self.inner.shared.borrow_mut();
        for i in (0..flat.length().saturating_sub(4)).step_by(5) {
            let state = flat.get(i + 1).as_string().and_then(|s| State::parse(&s));
            if let (Some(key), Some(state)) = (flat.get(i).as_string(), state) {
                let snapshot = Snapshot {
                    state,
                    failures: field(i + 2) as u32,
                    open_until_ms: field(i + 3) as u64,
                    cooled_until_ms: field(i + 4) as u64,
                };
                shared.restore(key, snapshot, now);
            }
        }
    }
}

/// The report of what a call returned or threw: attempts, waits, which route served it.
#[wasm_bindgen(js_name = retryReport)]
pub fn retry_report(value: JsValue) -> JsValue {
    values::report_of(&value)
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
    let opts = options::read(&options, false)?;
    let storm = crate::sim::Storm {
        calls: calls.min(10_000),
        capacity_per_sec,
        latency_ms: latency_ms.into(),
        bucket_ms: bucket_ms.into(),
    };
    let r = crate::sim::storm(&storm, &opts.cfg, seed as u64);
    let timeline: js_sys::Array = r.timeline.iter().map(|&n| JsValue::from(n)).collect();
    Ok(errors::obj(&[
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
    let opts = options::read(&options, false)?;
    let rows = crate::sim::schedules(&opts.cfg, runs.min(1000), seed as u64);
    Ok(rows
        .iter()
        .map(|row| JsValue::from(row.iter().map(|&ms| JsValue::from(ms as f64)).collect::<js_sys::Array>()))
        .collect::<js_sys::Array>()
        .into())
}
