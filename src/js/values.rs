//! Bindings to the wasm layer's JavaScript half (`src/js/*.js`): one file per concern, each named
//! after what it does, and one block here per file. What is done there is about JavaScript values
//! rather than decisions: the option checks, a caller's request read once and what each route
//! sends, what a `retry(fn)` callback threw, the events, reports and errors users get. The wasm
//! keeps the policy and the driving: the engine, fetch, timers, signals.
//!
//! wasm-bindgen puts a file in the package only when the wasm imports from it, so every file
//! has a block here (and the files import each other).

use alloc::string::String;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{AbortController, AbortSignal};

/// What `readRequest` writes as `out[0]` and `sendParked` settles with as the status when what
/// it was given threw: the value is the error (`request.js` THREW).
pub const THREW: f64 = -2.0;

// Readers of JavaScript values, which the other files share.
#[wasm_bindgen(module = "/src/js/values.js")]
extern "C" {
    /// The TypeError for a transport that resolved to something that is not a response.
    #[wasm_bindgen(js_name = notResponse)]
    pub fn not_response(v: &JsValue) -> JsValue;
}

// Options (options.rs).
#[wasm_bindgen(module = "/src/js/options.js")]
extern "C" {
    /// Checks the user's options; throws a TypeError or RangeError naming the option. The
    /// settings are written as numbers at `at` (options.rs, `drive::slots_at`), the rest returned.
    #[wasm_bindgen(js_name = checkOptions, catch)]
    pub fn check_options(options: &JsValue, for_retry: bool, at: u32) -> Result<JsValue, JsValue>;
}

// A call's names (drive.rs `Names`).
#[wasm_bindgen(module = "/src/js/names.js")]
extern "C" {
    /// Hands `names.js` the wasm's memory, which it writes a call's shape and the options into
    /// (as each client's options are read: `options::read`).
    #[wasm_bindgen(js_name = setMemory)]
    pub fn set_memory(memory: &JsValue);
    /// What the wasm needs of a call (see `drive::Names`), written at `at` (`drive::slots_at`).
    #[wasm_bindgen(js_name = shape)]
    pub fn shape(call: &JsValue, at: u32);
    /// The route key of number `id` in the table call `call`'s routes were numbered in.
    #[wasm_bindgen(js_name = keyName)]
    pub fn key_name(call: &JsValue, id: u32) -> Option<String>;
}

// retryFetch's request (fetch.rs).
#[wasm_bindgen(module = "/src/js/request.js")]
extern "C" {
    /// The call's request, or a promise of it when a body must be read first (flags -1), or the
    /// TypeError for what `fetch` itself would reject (flags [`THREW`]): returned, not thrown, so
    /// the happy path needs no catching wrapper. The shape is written at `at` (`drive::slots_at`).
    #[wasm_bindgen(js_name = readRequest)]
    pub fn read_request(input: &JsValue, init: &JsValue, options: &JsValue, at: u32) -> JsValue;
    /// Sends a route of the request with `signal` (the attempt's own, when it has a timeout) or
    /// else its caller's; settles through `settle(id, value, status, seen, now)` (a parked call's
    /// first attempt); with status [`THREW`] when the route's request cannot be built (at once)
    /// or fetch refused it. Never throws. `limits`: as [`success`]'s.
    #[wasm_bindgen(js_name = sendParked)]
    pub fn send_parked(
        request: &JsValue,
        route: u32,
        signal: Option<&AbortSignal>,
        transport: Option<&js_sys::Function>,
        id: u32,
        limits: bool,
        settle: &js_sys::Function,
    ) -> JsValue;
    /// Sends a route of the request with `signal` set on its init, through `transport` (else
    /// the global fetch): a promise of what the transport gives.
    #[wasm_bindgen(js_name = send, catch)]
    pub fn send(
        request: &JsValue,
        route: u32,
        signal: Option<&AbortSignal>,
        transport: Option<&js_sys::Function>,
    ) -> Result<Promise, JsValue>;
    /// Whether a transport's rejection is fetch refusing the request itself (the call ends with it).
    #[wasm_bindgen(js_name = refused)]
    pub fn refused(error: &JsValue) -> bool;
    /// A response's status (100 to 599), or 0 for a value that is not a response (`statusOf`).
    #[wasm_bindgen(js_name = statusOf)]
    pub fn status_of(v: &JsValue) -> f64;
}

// Response headers for the core (fetch.rs).
#[wasm_bindgen(module = "/src/js/headers.js")]
extern "C" {
    /// A response's headers of `names` (the core's hint headers), as `name\nvalue\n` lines.
    #[wasm_bindgen(js_name = hintHeaders)]
    pub fn hint_headers(response: &JsValue, names: &Array) -> String;
    /// A successful response's rate-limit headers as lines, or none if it has none.
    #[wasm_bindgen(js_name = limitHeaders)]
    pub fn limit_headers(headers: &web_sys::Headers) -> Option<String>;
}

// Event streams (fetch.rs).
#[wasm_bindgen(module = "/src/js/stream.js")]
extern "C" {
    /// For a response below 400: the body reader of a 2xx event stream, else its rate-limit
    /// headers as `name\nvalue\n` lines (a string) or undefined (also when `limits` is false).
    #[wasm_bindgen(js_name = success)]
    pub fn success(response: &JsValue, limits: bool) -> JsValue;
    /// Resolves to the next chunk (a Uint8Array) or undefined at the end; rejects on a transport error.
    #[wasm_bindgen(js_name = nextChunk)]
    pub fn next_chunk(reader: &JsValue) -> Promise;
    /// `x.cancel()` of a stream or its reader, its rejection ignored (nothing waits for it).
    #[wasm_bindgen(js_name = cancel)]
    pub fn cancel(x: &JsValue);
    /// A superseded attempt's response given back: its body cancelled unless locked (`discard`).
    #[wasm_bindgen(js_name = discard)]
    pub fn discard(v: &JsValue);
    /// The caller's Response: the held chunks, then the rest of the reader (idle timeout optional).
    #[wasm_bindgen(js_name = resumed)]
    pub fn resumed(
        response: &JsValue,
        held: &Array,
        reader: &JsValue,
        idle_ms: Option<f64>,
        options: &JsValue,
        names: &JsValue,
        route: u32,
    ) -> JsValue;
}

// retry(fn) (run.rs).
#[wasm_bindgen(module = "/src/js/run.js")]
extern "C" {
    /// A `retry(fn)` call's names (routes, their attempts, its id), its signal and per-call
    /// options; throws a TypeError or RangeError naming a bad `fn` or option.
    #[wasm_bindgen(js_name = fnCall, catch)]
    pub fn fn_call(f: &JsValue, options: &JsValue, opts: &JsValue) -> Result<JsValue, JsValue>;
    /// `fn` called for an attempt with its context `{ attempt, signal, route }`, as a promise:
    /// what it returns, or what it throws as a rejection (`callFn`).
    #[wasm_bindgen(js_name = callFn)]
    pub fn call_fn(f: &Function, names: &JsValue, route: u32, attempt: u32, signal: &AbortSignal) -> Promise;
    /// The async iterator of `fn`'s result (an SDK stream object), or undefined.
    #[wasm_bindgen(js_name = asyncIterator)]
    pub fn async_iterator(v: &JsValue) -> JsValue;
    /// Resolves to `[done, value]`.
    #[wasm_bindgen(js_name = nextItem)]
    pub fn next_item(iter: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = closeIterator)]
    pub fn close_iterator(iter: &JsValue);
    /// `[name, json]` of a stream item.
    #[wasm_bindgen(js_name = itemEvent)]
    pub fn item_event(item: &JsValue) -> Array;
    #[wasm_bindgen(js_name = resumedItems)]
    pub fn resumed_items(
        orig: &JsValue,
        held: &Array,
        iter: &JsValue,
        idle_ms: Option<f64>,
        attempt: &AbortController,
    ) -> JsValue;
    /// Closes a superseded stream object from `resumed_items`; anything else is left alone.
    #[wasm_bindgen(js_name = releaseItems)]
    pub fn release_items(v: &JsValue);
    /// `[kind, body, headers]`, the headers as `name\nvalue\n` lines: see `run.js`.
    #[wasm_bindgen(js_name = thrown)]
    pub fn thrown(error: &JsValue, names: &Array) -> Array;
}

// The calls' tasks and promises, signals and timers (task.rs, host.rs).
#[wasm_bindgen(module = "/src/js/host.js")]
extern "C" {
    /// `signal.addEventListener("abort", f, { once: true })` (host.rs `Listener`).
    #[wasm_bindgen(js_name = listen)]
    pub fn listen(signal: &AbortSignal, f: &js_sys::Function);
    /// `signal.removeEventListener("abort", f)`.
    #[wasm_bindgen(js_name = unlisten)]
    pub fn unlisten(signal: &AbortSignal, f: &js_sys::Function);
    /// The reason an attempt is aborted with when its own timer fires: a `TimeoutError`
    /// `DOMException`, as `AbortSignal.timeout()` uses.
    #[wasm_bindgen(js_name = timeoutError)]
    pub fn timeout_error() -> JsValue;
    /// `array.push(value)`, in place of js-sys's (whose result, the length, gave it a wrapper
    /// of its own).
    #[wasm_bindgen(js_name = push)]
    pub fn push(array: &Array, value: &JsValue);
    /// `queueMicrotask(f)`.
    #[wasm_bindgen(js_name = microtask)]
    pub fn microtask(f: &js_sys::Function);
    /// A task's settle function, `(ok, value) => …`, with its promise as `.p`.
    #[wasm_bindgen(js_name = deferred)]
    pub fn deferred() -> js_sys::Function;
    #[wasm_bindgen(js_name = promiseOf)]
    pub fn promise_of(settle: &js_sys::Function) -> Promise;
    #[wasm_bindgen(js_name = settle)]
    pub fn settle(settle: &js_sys::Function, ok: bool, value: &JsValue);
    /// Calls `f` once `p` settles, unless [`unhook`] came first; the hook holds the outcome.
    #[wasm_bindgen(js_name = hook)]
    pub fn hook(p: &JsValue, f: &js_sys::Function) -> JsValue;
    #[wasm_bindgen(js_name = unhook)]
    pub fn unhook(hook: &JsValue);
    /// What a settled hook's promise resolved or rejected with (no throw: a rejection is
    /// told by [`fulfilled`], and crosses without JavaScript's exception machinery).
    #[wasm_bindgen(js_name = outcome)]
    pub fn outcome(hook: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = fulfilled)]
    pub fn fulfilled(hook: &JsValue) -> bool;
    /// `signal.aborted`, read through `AbortSignal.prototype`'s getter (see `isAborted`).
    #[wasm_bindgen(js_name = isAborted)]
    pub fn is_aborted(signal: &AbortSignal) -> bool;
    /// The signal of a call object whose shape has flag 2 (`signalOf`; checked by `readRequest` and `fnCall`).
    #[wasm_bindgen(js_name = signalOf)]
    pub fn signal_of(call: &JsValue) -> AbortSignal;
    /// `controller`'s signal made to follow `caller`'s abort, as `AbortSignal.any` would
    /// (`followSignal`); undefined when the host can do neither.
    #[wasm_bindgen(js_name = followSignal)]
    pub fn follow_signal(caller: &AbortSignal, controller: &AbortController) -> Option<AbortSignal>;
    /// `new AbortController()` (`abortController`).
    #[wasm_bindgen(js_name = abortController)]
    pub fn abort_controller() -> AbortController;
}

// Shared health (drive.rs, mod.rs).
#[wasm_bindgen(module = "/src/js/health.js")]
extern "C" {
    /// A promise to wait for before a call (a client's first read of its health store), or undefined.
    #[wasm_bindgen(js_name = healthBefore)]
    pub fn health_before(options: &JsValue, names: &JsValue) -> JsValue;
    /// What the breakers learned, `[key, openedAt, openUntil, closedAt, cooledUntil, …]`, for the store.
    #[wasm_bindgen(js_name = healthTell)]
    pub fn health_tell(options: &JsValue, flat: &Array);
    /// A send slot from the shared bucket: a promise of ms since the epoch or undefined, or
    /// undefined at once; rejects with the caller's reason when `signal` aborts first.
    #[wasm_bindgen(js_name = healthPace)]
    pub fn health_pace(
        options: &JsValue,
        key: &JsValue,
        interval: f64,
        burst: f64,
        tat: f64,
        within: Option<f64>,
        signal: Option<&AbortSignal>,
    ) -> JsValue;
}

// What users get (errors.rs): events, reports, errors. `names`: the call's (id, models).
#[wasm_bindgen(module = "/src/js/report.js")]
extern "C" {
    /// The event object of kind `flat[0]` from its numbers and `text` (see `errors::event`).
    #[wasm_bindgen(js_name = event)]
    pub fn event(names: &JsValue, flat: &[f64], text: &JsValue) -> JsValue;
    /// The reason names, comma-separated, by `Reason as usize` (once per module instance).
    #[wasm_bindgen(js_name = setReasons)]
    pub fn set_reasons(list: &str);
    /// The report object now (for `onExhausted` and errors), from the flat numbers of `errors::report`.
    #[wasm_bindgen(js_name = report)]
    pub fn report_js(names: &JsValue, flat: &[f64]) -> JsValue;
    /// Keeps the flat report for `ended` (what the call returned or threw) when that is an
    /// object; `retryReport` builds it when asked.
    #[wasm_bindgen(js_name = keepReport)]
    pub fn keep_report(names: &JsValue, flat: &[f64], ended: &JsValue);
    /// `keep_report` for a report of one attempt and no skipped route, as plain numbers.
    #[wasm_bindgen(js_name = keepReport1)]
    pub fn keep_report1(
        names: &JsValue,
        ended: &JsValue,
        wait: f64,
        duration: f64,
        route: f64,
        fallback: f64,
        first_token: f64,
        a_route: f64,
        status: f64,
        reason: f64,
        waited: f64,
        in_stream: f64,
    );
    /// The report kept for a value a call returned or threw.
    #[wasm_bindgen(js_name = reportOf)]
    pub fn report_of(v: &JsValue) -> JsValue;
    /// A `RetryError` (`flat[0]` 0) or `CircuitOpenError` (1) carrying `report`, from the
    /// numbers of `errors::retry_error` or `errors::circuit_open_error`.
    #[wasm_bindgen(js_name = error)]
    pub fn error(report: &JsValue, flat: &[f64], cause: &JsValue) -> JsValue;
}
