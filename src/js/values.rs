//! Bindings to `values.js`, the wasm layer's JavaScript half (one block, so the glue imports
//! the module once).

use alloc::vec::Vec;

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

#[wasm_bindgen(module = "/src/js/values.js")]
extern "C" {
    // Options (options.rs).
    /// Checks the user's options; throws a TypeError or RangeError naming the option.
    #[wasm_bindgen(js_name = checkOptions, catch)]
    pub fn check_options(options: &JsValue, for_retry: bool) -> Result<JsValue, JsValue>;
    // retryFetch's request (fetch.rs).
    /// Rejects with a TypeError on what `fetch` itself would reject.
    #[wasm_bindgen(js_name = readRequest)]
    pub fn read_request(input: &JsValue, init: &JsValue, options: &JsValue) -> Promise;
    /// `[url, init]` for a route of the request.
    #[wasm_bindgen(js_name = routeRequest, catch)]
    pub fn route_request(request: &JsValue, route: u32) -> Result<Array, JsValue>;
    /// For a response below 400: the body reader of a 2xx event stream, else its rate-limit
    /// headers `[name, value, …]` or undefined.
    #[wasm_bindgen(js_name = success)]
    pub fn success(response: &JsValue) -> JsValue;
    /// Resolves to the next chunk (a Uint8Array) or undefined at the end; rejects on a transport error.
    #[wasm_bindgen(js_name = nextChunk)]
    pub fn next_chunk(reader: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = cancelReader)]
    pub fn cancel_reader(reader: &JsValue);
    /// The caller's Response: the held chunks, then the rest of the reader (idle timeout optional).
    #[wasm_bindgen(js_name = resumed)]
    pub fn resumed(
        response: &JsValue,
        held: &Array,
        reader: &JsValue,
        idle_ms: Option<f64>,
        options: &JsValue,
        models: &JsValue,
        route: u32,
    ) -> JsValue;
    /// A successful response's rate-limit headers, `[name, value, …]`, or undefined if it has none.
    #[wasm_bindgen(js_name = limitHeaders)]
    pub fn limit_headers(headers: &web_sys::Headers) -> JsValue;
    // retry(fn) (run.rs).
    /// Throws a TypeError naming a bad `fn` or `signal`.
    #[wasm_bindgen(js_name = checkCall, catch)]
    pub fn check_call(f: &JsValue, signal: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = fnRoutes)]
    pub fn fn_routes(options: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = fnContext)]
    pub fn fn_context(options: &JsValue, route: u32, attempt: u32, signal: &AbortSignal) -> JsValue;
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
    pub fn resumed_items(orig: &JsValue, held: &Array, iter: &JsValue) -> JsValue;
    /// `[kind, body, name, value, …]`: see `values.js`.
    #[wasm_bindgen(js_name = thrown)]
    pub fn thrown(error: &JsValue, names: &Array) -> Array;
    // What users get (errors.rs): events, reports, errors.
    #[wasm_bindgen(js_name = retryEvent)]
    pub fn retry_event(
        models: &JsValue,
        route: u32,
        attempt: u32,
        delay_ms: f64,
        reason: &str,
        status: Option<u16>,
        wait: &str,
        hint: bool,
    ) -> JsValue;
    #[wasm_bindgen(js_name = fallbackEvent)]
    pub fn fallback_event(models: &JsValue, from: u32, to: u32, reason: &str, status: Option<u16>) -> JsValue;
    #[wasm_bindgen(js_name = breakerEvent)]
    pub fn breaker_event(key: &str, from: &str, to: &str) -> JsValue;
    #[wasm_bindgen(js_name = skipEvent)]
    pub fn skip_event(models: &JsValue, route: u32, retry_in_ms: f64, cause: &str) -> JsValue;
    #[wasm_bindgen(js_name = commitEvent)]
    pub fn commit_event(models: &JsValue, route: u32, attempt: u32, first_token_ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = waitEvent)]
    pub fn wait_event(models: &JsValue, route: u32, delay_ms: f64, wait: &str, hint: bool) -> JsValue;
    #[wasm_bindgen(js_name = giveUpEvent)]
    pub fn give_up_event(reason: &str, attempts: u32, status: Option<u16>) -> JsValue;
    #[wasm_bindgen(js_name = successEvent)]
    pub fn success_event(models: &JsValue, route: u32, attempts: u32, total_ms: f64, fallback: bool) -> JsValue;
    #[wasm_bindgen(js_name = reportAttempt)]
    pub fn report_attempt(
        models: &JsValue,
        route: u32,
        status: Option<u16>,
        reason: &str,
        waited_ms: f64,
        in_stream: bool,
    ) -> JsValue;
    #[wasm_bindgen(js_name = report)]
    pub fn report_js(
        models: &JsValue,
        attempts: Array,
        total_wait_ms: f64,
        duration_ms: f64,
        route: Option<u32>,
        fallback: bool,
        skipped: Vec<u32>,
        first_token_ms: Option<f64>,
    ) -> JsValue;
    #[wasm_bindgen(js_name = retryError)]
    pub fn retry_error_js(
        attempts: u32,
        reason: &str,
        status: Option<u16>,
        cause: &JsValue,
        report: &JsValue,
    ) -> JsValue;
    #[wasm_bindgen(js_name = circuitOpenError)]
    pub fn circuit_open_error(retry_in_ms: f64, reason: &str, report: &JsValue) -> JsValue;
    /// The TypeError for a transport that resolved to something that is not a response.
    #[wasm_bindgen(js_name = notResponse)]
    pub fn not_response(v: &JsValue) -> JsValue;
}
