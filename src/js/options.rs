//! The JavaScript options object → a validated [`Config`] plus the host-side settings.
//!
//! Checked once, when the client is created: a wrong type is a `TypeError`, a value out of range
//! a `RangeError`, an unknown key (a typo such as `maxAtempts`) a `TypeError` — each naming the
//! option as the user wrote it.

use alloc::{string::String, string::ToString, vec::Vec};
use js_sys::{Array, Function, Object};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::errors::{get, range_error, type_error};
use super::host;
use crate::num::{self, is_whole};
use crate::policy::backoff::Jitter;
use crate::policy::breaker::BreakerConfig;
use crate::policy::budget::BudgetConfig;
use crate::policy::classify::StatusSet;
use crate::policy::config::{self, Config, MAX_MS};
use crate::text::cat;

#[derive(Clone, Debug)]
pub struct RouteUrl {
    pub href: String,
    pub origin: String,
}

/// One fallback route, tried after the primary (the request as given).
#[derive(Clone, Debug, Default)]
pub struct Fallback {
    /// Rewrites the top-level `"model"` of a JSON body.
    pub model: Option<String>,
    /// Sends to another endpoint (an absolute URL, checked when the client is created).
    pub url: Option<RouteUrl>,
    /// Set or replace these headers on this route.
    pub headers: Vec<(String, String)>,
    pub max_attempts: Option<u32>,
}

pub struct Options {
    pub cfg: Config,
    pub fallbacks: Vec<Fallback>,
    pub transport: Option<Function>,
    pub on_event: Option<Function>,
    pub on_exhausted: Option<Function>,
    /// Lowercase header names never sent to another origin (the defaults plus the user's).
    pub sensitive: Vec<String>,
    /// `retry(fn)` only: the caller's signal.
    pub signal: Option<AbortSignal>,
}

/// Credentials dropped when a route's URL has another origin than the request's.
pub const SENSITIVE: [&str; 5] = [
    "authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "proxy-authorization",
];

const KEYS: &[&str] = &[
    "maxAttempts",
    "backoff",
    "deadlineMs",
    "attemptTimeoutMs",
    "retryOn",
    "maxRetryAfterMs",
    "idempotent",
    "budget",
    "breaker",
    "fetch",
    "onEvent",
    "fallbacks",
    "onExhausted",
    "sensitiveHeaders",
    "signal",
];

/// Parses `value` (undefined means all defaults). `with_signal` allows the `signal` key.
pub fn parse(value: &JsValue, with_signal: bool) -> Result<Options, JsValue> {
    let mut o = Options {
        cfg: Config::default(),
        fallbacks: Vec::new(),
        transport: None,
        on_event: None,
        on_exhausted: None,
        sensitive: SENSITIVE.iter().map(|s| s.to_string()).collect(),
        signal: None,
    };
    let Some(obj) = object(value, "options")? else {
        return Ok(o);
    };
    check_keys(&obj, "", KEYS)?;
    let c = &mut o.cfg;
    if let Some(n) = int(&get(&obj, "maxAttempts"), "maxAttempts")? {
        c.max_attempts = n;
    }
    if let Some(b) = object(&get(&obj, "backoff"), "backoff")? {
        check_keys(
            &b,
            "backoff.",
            &["initialMs", "maxMs", "multiplier", "jitter"],
        )?;
        let initial = ms(&get(&b, "initialMs"), "backoff.initialMs")?;
        let max = ms(&get(&b, "maxMs"), "backoff.maxMs")?;
        c.backoff.initial_ms = initial.unwrap_or(c.backoff.initial_ms);
        // A lone initialMs above the default cap raises the cap with it.
        c.backoff.max_ms = max.unwrap_or(c.backoff.max_ms.max(c.backoff.initial_ms));
        if let Some(m) = number(&get(&b, "multiplier"), "backoff.multiplier")? {
            c.backoff.multiplier = m;
        }
        let j = get(&b, "jitter");
        if let Some(s) = string(&j, "backoff.jitter")? {
            c.backoff.jitter = Jitter::parse(&s).ok_or_else(|| {
                range_error(&cat!(
                    r#"backoff.jitter must be "full", "equal", "decorrelated" or "none" (got ""#,
                    s,
                    r#"")"#
                ))
            })?;
        }
    }
    if let Some(v) = ms(&get(&obj, "deadlineMs"), "deadlineMs")? {
        c.deadline_ms = v;
    }
    c.attempt_timeout_ms = ms(&get(&obj, "attemptTimeoutMs"), "attemptTimeoutMs")?;
    if let Some(v) = ms(&get(&obj, "maxRetryAfterMs"), "maxRetryAfterMs")? {
        c.max_retry_after_ms = v;
    }
    if let Some(v) = boolean(&get(&obj, "idempotent"), "idempotent")? {
        c.idempotent = v;
    }
    let retry_on = get(&obj, "retryOn");
    if !retry_on.is_undefined() {
        c.retry_on = statuses(&retry_on)?;
    }
    let budget = get(&obj, "budget");
    if budget == JsValue::FALSE {
        c.budget = None;
    } else if let Some(b) = object(&budget, "budget")? {
        check_keys(&b, "budget.", &["maxTokens", "tokenRatio"])?;
        let d = BudgetConfig::default();
        c.budget = Some(BudgetConfig {
            max_tokens: number(&get(&b, "maxTokens"), "budget.maxTokens")?.unwrap_or(d.max_tokens),
            token_ratio: number(&get(&b, "tokenRatio"), "budget.tokenRatio")?
                .unwrap_or(d.token_ratio),
        });
    }
    let breaker = get(&obj, "breaker");
    if breaker == JsValue::FALSE {
        c.breaker = None;
    } else if let Some(b) = object(&breaker, "breaker")? {
        check_keys(&b, "breaker.", &["failureThreshold", "cooldownMs"])?;
        let d = BreakerConfig::default();
        c.breaker = Some(BreakerConfig {
            failure_threshold: int(&get(&b, "failureThreshold"), "breaker.failureThreshold")?
                .unwrap_or(d.failure_threshold),
            cooldown_ms: ms(&get(&b, "cooldownMs"), "breaker.cooldownMs")?.unwrap_or(d.cooldown_ms),
        });
    }
    c.validate().map_err(|e| range_error(&e.message))?;
    o.transport = function(&get(&obj, "fetch"), "fetch")?;
    o.on_event = function(&get(&obj, "onEvent"), "onEvent")?;
    o.on_exhausted = function(&get(&obj, "onExhausted"), "onExhausted")?;
    o.fallbacks = fallbacks(&get(&obj, "fallbacks"))?;
    let extra = get(&obj, "sensitiveHeaders");
    if !extra.is_undefined() {
        let list = array(&extra, "sensitiveHeaders")?;
        for (i, v) in host::items_of(&list)?.into_iter().enumerate() {
            let name = v
                .as_string()
                .ok_or_else(|| wrong_type(&cat!("sensitiveHeaders[", i, "]"), "a string", &v))?;
            o.sensitive.push(name.to_ascii_lowercase());
        }
    }
    let signal = get(&obj, "signal");
    if !signal.is_undefined() {
        if !with_signal {
            return Err(type_error(
                "signal is not an option of createRetryFetch: pass init.signal with each call",
            ));
        }
        if !signal.is_instance_of::<AbortSignal>() {
            return Err(wrong_type("signal", "an AbortSignal", &signal));
        }
        o.signal = Some(signal.unchecked_into());
    }
    Ok(o)
}

fn fallbacks(v: &JsValue) -> Result<Vec<Fallback>, JsValue> {
    if v.is_undefined() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, item) in host::items_of(&array(v, "fallbacks")?)?
        .into_iter()
        .enumerate()
    {
        let path = cat!("fallbacks[", i, "]");
        let Some(r) = object(&item, &path)? else {
            return Err(wrong_type(&path, "an object", &item));
        };
        check_keys(
            &r,
            &cat!(path, "."),
            &["model", "url", "headers", "maxAttempts"],
        )?;
        let max_attempts = int(&get(&r, "maxAttempts"), &cat!(path, ".maxAttempts"))?;
        if let Some(n) = max_attempts {
            config::check_attempts("maxAttempts", n)
                .map_err(|e| range_error(&cat!(path, ".", e.message)))?;
        }
        out.push(Fallback {
            model: string(&get(&r, "model"), &cat!(path, ".model"))?,
            url: match string(&get(&r, "url"), &cat!(path, ".url"))? {
                None => None,
                Some(u) => {
                    let parsed = web_sys::Url::new(&u).map_err(|_| {
                        type_error(&cat!(
                            path,
                            ".url must be an absolute URL (got \"",
                            u,
                            "\")"
                        ))
                    })?;
                    Some(RouteUrl {
                        href: parsed.href(),
                        origin: parsed.origin(),
                    })
                }
            },
            headers: header_pairs(&get(&r, "headers"), &cat!(path, ".headers"))?,
            max_attempts,
        });
    }
    Ok(out)
}

/// Any `HeadersInit` (object, array of pairs, `Headers`) → lowercase name/value pairs.
fn header_pairs(v: &JsValue, path: &str) -> Result<Vec<(String, String)>, JsValue> {
    if v.is_undefined() {
        return Ok(Vec::new());
    }
    let headers = web_sys::Headers::new_with_str_sequence_sequence(v)
        .map_err(|_| wrong_type(path, "a headers object of string values", v))?;
    let mut out = Vec::new();
    let iter = js_sys::try_iter(&headers).ok().flatten();
    for entry in iter.into_iter().flatten().flatten() {
        let pair = Array::from(&entry);
        if let (Some(k), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
            out.push((k, v));
        }
    }
    Ok(out)
}

fn statuses(v: &JsValue) -> Result<StatusSet, JsValue> {
    let mut set = StatusSet::empty();
    for (i, item) in host::items_of(&array(v, "retryOn")?)?
        .into_iter()
        .enumerate()
    {
        let n = item
            .as_f64()
            .ok_or_else(|| wrong_type(&cat!("retryOn[", i, "]"), "a number", &item))?;
        if !is_whole(n) || !set.insert(n as u16) || n > 599.0 {
            return Err(out_of_range(
                &cat!("retryOn[", i, "]"),
                "an HTTP status from 100 to 599",
                n,
            ));
        }
    }
    Ok(set)
}

fn check_keys(obj: &Object, prefix: &str, allowed: &[&str]) -> Result<(), JsValue> {
    for key in host::keys_of(obj)? {
        if !allowed.contains(&key.as_str()) {
            let hint = allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(&key) || close(a, &key));
            let hint = hint
                .map(|a| cat!(" (did you mean ", prefix, a, "?)"))
                .unwrap_or_default();
            return Err(type_error(&cat!("unknown option ", prefix, key, hint)));
        }
    }
    Ok(())
}

/// Same length ±1 and at most one edit apart in a cheap sense: a typo, not another word.
fn close(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    let suffix = short
        .iter()
        .rev()
        .zip(long.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    prefix + suffix + 1 >= long.len()
}

/// `TypeError: {path} must be {what} (got …)`.
fn wrong_type(path: &str, what: &str, v: &JsValue) -> JsValue {
    type_error(&cat!(path, " must be ", what, " (", got(v), ")"))
}

/// `RangeError: {path} must be {rule} (got n)`.
fn out_of_range(path: &str, rule: &str, n: f64) -> JsValue {
    range_error(&cat!(path, " must be ", rule, " (got ", n, ")"))
}

/// Describes a value for an error message: `got string "3"`, `got number 5`, `got object`.
pub fn got(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        return cat!("got string \"", s, "\"");
    }
    if let Some(n) = v.as_f64() {
        return cat!("got number ", n);
    }
    if v.is_null() {
        return "got null".into();
    }
    let t = v.js_typeof().as_string().unwrap_or_default();
    if let Some(b) = v.as_bool() {
        return cat!("got boolean ", if b { "true" } else { "false" });
    }
    cat!("got ", t)
}

fn object(v: &JsValue, path: &str) -> Result<Option<Object>, JsValue> {
    if v.is_undefined() {
        return Ok(None);
    }
    if !v.is_object() || v.is_function() || Array::is_array(v) {
        return Err(wrong_type(path, "an object", v));
    }
    Ok(Some(v.clone().unchecked_into()))
}

fn array(v: &JsValue, path: &str) -> Result<Array, JsValue> {
    if !Array::is_array(v) {
        return Err(wrong_type(path, "an array", v));
    }
    Ok(v.clone().unchecked_into())
}

fn number(v: &JsValue, path: &str) -> Result<Option<f64>, JsValue> {
    if v.is_undefined() {
        return Ok(None);
    }
    let n = v.as_f64().ok_or_else(|| wrong_type(path, "a number", v))?;
    if !n.is_finite() {
        return Err(out_of_range(path, "a finite number", n));
    }
    Ok(Some(n))
}

fn int(v: &JsValue, path: &str) -> Result<Option<u32>, JsValue> {
    match number(v, path)? {
        None => Ok(None),
        Some(n) if is_whole(n) && n >= 0.0 && n <= u32::MAX as f64 => Ok(Some(n as u32)),
        Some(n) => Err(out_of_range(path, "a whole number ≥ 0", n)),
    }
}

fn ms(v: &JsValue, path: &str) -> Result<Option<u64>, JsValue> {
    match number(v, path)? {
        None => Ok(None),
        Some(n) if (0.0..=MAX_MS as f64).contains(&n) => Ok(Some(num::ceil(n))),
        Some(n) => Err(out_of_range(
            path,
            &cat!("between 0 and ", MAX_MS, " ms"),
            n,
        )),
    }
}

fn boolean(v: &JsValue, path: &str) -> Result<Option<bool>, JsValue> {
    if v.is_undefined() {
        return Ok(None);
    }
    v.as_bool()
        .map(Some)
        .ok_or_else(|| wrong_type(path, "a boolean", v))
}

fn string(v: &JsValue, path: &str) -> Result<Option<String>, JsValue> {
    if v.is_undefined() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| wrong_type(path, "a string", v))
}

fn function(v: &JsValue, path: &str) -> Result<Option<Function>, JsValue> {
    if v.is_undefined() {
        return Ok(None);
    }
    if !v.is_function() {
        return Err(wrong_type(path, "a function", v));
    }
    Ok(Some(v.clone().unchecked_into()))
}
