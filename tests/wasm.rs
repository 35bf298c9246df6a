//! The wasm-bindgen layer in a real JS host (Node, via wasm-bindgen-test-runner), driven through
//! the exported `RetryClient` with a scripted `fetch` transport that records every request.
//! The client takes options as users write them; `for_retry` false is `createRetryFetch`'s form.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect, JSON};
use llm_retry::js::RetryClient;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{Response, ResponseInit};

/// What the transport received: URL and the init's headers and body.
#[derive(Clone, Debug)]
struct Seen {
    url: String,
    headers: web_sys::Headers,
    body: Option<String>,
}

/// A transport answering from `script` (status, headers), or failing like fetch on status 0.
fn transport(script: &'static [(u16, &'static [(&'static str, &'static str)])]) -> (Function, Rc<RefCell<Vec<Seen>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let f = Closure::<dyn FnMut(JsValue, JsValue) -> Promise>::new(move |url: JsValue, init: JsValue| {
        let headers = Reflect::get(&init, &"headers".into()).unwrap();
        let headers = if headers.is_undefined() {
            web_sys::Headers::new().unwrap()
        } else {
            web_sys::Headers::new_with_str_sequence_sequence(&headers).unwrap()
        };
        let body = Reflect::get(&init, &"body".into()).unwrap().as_string();
        let mut log = log.borrow_mut();
        let step = script[log.len().min(script.len() - 1)];
        log.push(Seen { url: url.as_string().unwrap(), headers, body });
        if step.0 == 0 {
            return Promise::reject(&js_sys::TypeError::new("fetch failed"));
        }
        let h = web_sys::Headers::new().unwrap();
        for (k, v) in step.1 {
            h.set(k, v).unwrap();
        }
        let init = ResponseInit::new();
        init.set_status(step.0);
        init.set_headers(&h);
        Promise::resolve(&JsValue::from(Response::new_with_opt_str_and_init(Some("{}"), &init).unwrap()))
    });
    (f.into_js_value().unchecked_into(), seen)
}

fn options(json: &str, fetch: &Function) -> JsValue {
    let o = JSON::parse(json).unwrap();
    Reflect::set(&o, &"fetch".into(), fetch).unwrap();
    o
}

async fn call(client: &RetryClient, url: &str, init: &str) -> Result<JsValue, JsValue> {
    JsFuture::from(client.fetch(url.into(), JSON::parse(init).unwrap(), js_sys::Date::now())).await
}

fn status(v: &JsValue) -> u16 {
    v.unchecked_ref::<Response>().status()
}

fn prop(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

const FAST: &str = r#"{"backoff":{"initialMs":1,"maxMs":5}}"#;

#[wasm_bindgen_test]
async fn retries_server_errors_then_returns_the_success() {
    let (f, seen) = transport(&[(503, &[]), (503, &[]), (200, &[])]);
    let client = RetryClient::new(options(FAST, &f), false).unwrap();
    let r = call(&client, "http://127.0.0.1:9/v1", r#"{"method":"POST","body":"{\"model\":\"m\"}"}"#).await.unwrap();
    assert_eq!(status(&r), 200);
    assert_eq!(seen.borrow().len(), 3);
    assert!(seen.borrow().iter().all(|s| s.body.as_deref() == Some(r#"{"model":"m"}"#)));
}

#[wasm_bindgen_test]
async fn a_callers_error_is_returned_after_one_request() {
    let (f, seen) = transport(&[(400, &[]), (200, &[])]);
    let client = RetryClient::new(options(FAST, &f), false).unwrap();
    let r = call(&client, "http://127.0.0.1:9/v1", "{}").await.unwrap();
    assert_eq!((status(&r), seen.borrow().len()), (400, 1));
}

#[wasm_bindgen_test]
async fn exhaustion_on_a_status_resolves_with_the_last_response() {
    let (f, seen) = transport(&[(503, &[])]);
    let client =
        RetryClient::new(options(r#"{"maxAttempts":3,"backoff":{"initialMs":1,"maxMs":5}}"#, &f), false).unwrap();
    let r = call(&client, "http://127.0.0.1:9/v1", "{}").await.unwrap();
    assert_eq!((status(&r), seen.borrow().len()), (503, 3));
}

#[wasm_bindgen_test]
async fn network_errors_end_in_a_retry_error_with_the_cause() {
    let (f, seen) = transport(&[(0, &[])]);
    let client =
        RetryClient::new(options(r#"{"maxAttempts":2,"backoff":{"initialMs":1,"maxMs":5}}"#, &f), false).unwrap();
    let e = call(&client, "http://127.0.0.1:9/v1", "{}").await.unwrap_err();
    assert_eq!(prop(&e, "name"), "RetryError");
    assert_eq!(prop(&e, "attempts"), 2);
    assert_eq!(prop(&e, "reason"), "attempts-exhausted");
    assert_eq!(prop(&prop(&e, "cause"), "message"), "fetch failed");
    assert_eq!(seen.borrow().len(), 2);
}

#[wasm_bindgen_test]
async fn a_long_retry_after_returns_the_429_at_once() {
    let (f, seen) = transport(&[(429, &[("retry-after", "120")]), (200, &[])]);
    let client = RetryClient::new(options(FAST, &f), false).unwrap();
    let r = call(&client, "http://127.0.0.1:9/v1", "{}").await.unwrap();
    assert_eq!((status(&r), seen.borrow().len()), (429, 1));
}

#[wasm_bindgen_test]
async fn fallback_rewrites_the_model_and_keeps_credentials_home() {
    let (f, seen) = transport(&[(503, &[]), (200, &[])]);
    let opts = r#"{"maxAttempts":1,"fallbacks":[{"model":"backup","url":"http://127.0.0.2:9/v1","headers":{"x-api-key":"theirs"}}]}"#;
    let client = RetryClient::new(options(opts, &f), false).unwrap();
    let init = r#"{"method":"POST","headers":{"authorization":"Bearer sk-mine","x-api-key":"mine","x-trace":"t"},"body":"{\"model\":\"primary\",\"n\":1}"}"#;
    let r = call(&client, "http://127.0.0.1:9/v1", init).await.unwrap();
    assert_eq!(status(&r), 200);
    let seen = seen.borrow();
    assert_eq!(seen[1].url, "http://127.0.0.2:9/v1");
    assert_eq!(seen[1].body.as_deref(), Some(r#"{"model":"backup","n":1}"#));
    assert_eq!(seen[1].headers.get("authorization").unwrap(), None);
    assert_eq!(seen[1].headers.get("x-api-key").unwrap().as_deref(), Some("theirs"));
    assert_eq!(seen[1].headers.get("x-trace").unwrap().as_deref(), Some("t"));
    let report = llm_retry::js::retry_report(r);
    assert_eq!(prop(&report, "model"), "backup");
    assert_eq!(prop(&report, "fallback"), true);
}

#[wasm_bindgen_test]
async fn breaker_state_exports_and_restores() {
    let (f, seen) = transport(&[(503, &[])]);
    // A deadline shorter than the cooldown: the restored client cannot wait in line, so it refuses.
    let opts = r#"{"maxAttempts":1,"deadlineMs":5000,"breaker":{"failureThreshold":1,"cooldownMs":60000}}"#;
    let a = RetryClient::new(options(opts, &f), false).unwrap();
    call(&a, "http://127.0.0.1:9/v1", "{}").await.unwrap();
    // Flat: key, state, failures, openUntil, cooledUntil (api.js shapes it for users).
    let state = a.export_state();
    assert_eq!(state.length(), 5);
    assert_eq!(state.get(1), "open");
    // An entry with an unknown state is skipped, not fatal.
    let junk = JSON::parse(r#"["k","ajar",1,2,3,5]"#).unwrap();
    let b = RetryClient::new(options(opts, &f), false).unwrap();
    b.restore_state(junk.unchecked_into());
    b.restore_state(JSON::parse(&JSON::stringify(&state).unwrap().as_string().unwrap()).unwrap().unchecked_into());
    let e = call(&b, "http://127.0.0.1:9/v1", "{}").await.unwrap_err();
    assert_eq!(prop(&e, "name"), "CircuitOpenError");
    assert_eq!(seen.borrow().len(), 1, "an open breaker sends nothing");
}

#[wasm_bindgen_test]
fn rules_between_options_throw_range_errors_naming_the_option() {
    for (json, needle) in [
        (r#"{"maxAttempts":0}"#, "maxAttempts"),
        (r#"{"backoff":{"initialMs":500,"maxMs":100}}"#, "backoff.maxMs"),
        (r#"{"deadlineMs":0}"#, "deadlineMs"),
        (r#"{"deadlineMs":1e300}"#, "deadlineMs"),
        (r#"{"budget":{"maxTokens":5,"tokenRatio":6}}"#, "budget.tokenRatio"),
        (r#"{"breaker":{"cooldownMs":500,"maxCooldownMs":100}}"#, "breaker.maxCooldownMs"),
    ] {
        let e = RetryClient::new(JSON::parse(json).unwrap(), false).err().expect(json);
        assert_eq!(prop(&e, "name"), "RangeError", "{json}");
        let message = prop(&e, "message").as_string().unwrap();
        assert!(message.contains(needle), "{json}: {message}");
    }
    assert!(RetryClient::new(JsValue::UNDEFINED, false).is_ok());
    assert!(RetryClient::new(Object::new().into(), false).is_ok());
}

#[wasm_bindgen_test]
fn values_of_the_wrong_type_are_type_errors_naming_the_option() {
    for (json, needle) in [
        (r#"{"maxAttempts":"3"}"#, "maxAttempts must be a number (got string \"3\")"),
        (r#"{"backoff":{"jitter":5}}"#, "backoff.jitter"),
        (r#"{"fallbacks":[5]}"#, "fallbacks[0] must be a route object"),
        (r#"{"fallbacks":[{"url":"x"}]}"#, "fallbacks[0].url must be an absolute URL"),
        (r#"{"sensitiveHeaders":"x-key"}"#, "sensitiveHeaders must be an array"),
        (r#"{"fetch":5}"#, "fetch must be a function"),
        (r#"{"maxAtempts":3}"#, "did you mean maxAttempts?"),
    ] {
        let e = RetryClient::new(JSON::parse(json).unwrap(), false).err().expect(json);
        assert_eq!(prop(&e, "name"), "TypeError", "{json}");
        let message = prop(&e, "message").as_string().unwrap();
        assert!(message.contains(needle), "{json}: {message}");
    }
}

/// The wasm's allocator (src/js/heap.rs), which every test here runs on: blocks of sizes from 1
/// byte to 70 KB and alignments to 64, grown, shrunk and freed in a scrambled order, keep what
/// was written to them (no two overlap), are aligned, and blocks freed are handed out again
/// before the memory grows.
#[wasm_bindgen_test]
fn the_allocator_keeps_each_block_apart_and_reuses_freed_ones() {
    use std::alloc::{alloc, dealloc, realloc, Layout};
    let mut seed = 7u32;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 8) as usize % n
    };
    let intact =
        |p: *mut u8, len: usize, tag: u8| unsafe { std::slice::from_raw_parts(p, len) }.iter().all(|&b| b == tag);
    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::with_capacity(1_000);
    for round in 0..5_000 {
        let size = 1 + [32, 600, 5_000, 70_000][next(4)];
        let size = 1 + next(size);
        let layout = Layout::from_size_align(size, 1 << next(7)).unwrap();
        let p = unsafe { alloc(layout) };
        assert!(!p.is_null() && p as usize % layout.align() == 0, "{layout:?} at {p:?}");
        let tag = round as u8;
        unsafe { p.write_bytes(tag, size) };
        live.push((p, layout, tag));
        if next(4) == 0 {
            // Grown or shrunk in place or moved: what it held is kept.
            let i = next(live.len());
            let (p, l, t) = live[i];
            let to = 1 + next(8_000);
            let q = unsafe { realloc(p, l, to) };
            assert!(!q.is_null() && intact(q, l.size().min(to), t), "realloc {l:?} to {to}");
            unsafe { q.write_bytes(t, to) };
            live[i] = (q, Layout::from_size_align(to, l.align()).unwrap(), t);
        }
        if live.len() > 900 || next(3) == 0 {
            let (p, l, t) = live.swap_remove(next(live.len()));
            assert!(intact(p, l.size(), t), "a block of {l:?} was written over");
            unsafe { dealloc(p, l) };
        }
    }
    // The blocks left are freed, and the same layouts taken again in another order: each comes
    // from its class's list (those aligned to ≤ 16 bytes; one aligned more is cut anew), so the
    // memory does not grow.
    let mut freed: Vec<Layout> = Vec::with_capacity(live.len());
    for (p, l, t) in live.drain(..) {
        assert!(intact(p, l.size(), t), "a block of {l:?} was written over");
        unsafe { dealloc(p, l) };
        freed.push(l);
    }
    freed.retain(|l| l.align() <= 16);
    freed.reverse();
    let mut again = Vec::with_capacity(freed.len());
    let pages = core::arch::wasm32::memory_size(0);
    again.extend(freed.iter().map(|&l| (unsafe { alloc(l) }, l)));
    assert_eq!(core::arch::wasm32::memory_size(0), pages, "the memory grew though freed blocks were there");
    for (p, l) in again {
        assert!(!p.is_null());
        unsafe { dealloc(p, l) };
    }
}
