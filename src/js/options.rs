//! The options, as the package's `options.js` hands them over: checked there (types, unknown
//! keys, ranges of single values, each error naming the option as the user wrote it) and
//! flattened into one plain object. This reads that object into a [`Config`], whose own
//! `validate` checks the rules between options (a `RangeError` naming the option).
//!
//! Read defensively all the same: a value of the wrong type counts as absent, never a panic.

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::errors::{get, range_error};
use crate::num;
use crate::policy::backoff::Jitter;
use crate::policy::breaker::BreakerConfig;
use crate::policy::budget::BudgetConfig;
use crate::policy::classify::StatusSet;
use crate::policy::config::{Config, MAX_ATTEMPTS};

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
    /// Sends to another endpoint (an absolute URL).
    pub url: Option<RouteUrl>,
    /// Set or replace these headers on this route (lowercase names).
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
pub const SENSITIVE: [&str; 5] = ["authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"];

/// Reads the checked options (`undefined`: all defaults).
pub fn read(o: &JsValue) -> Result<Options, JsValue> {
    let mut opts = Options {
        cfg: Config::default(),
        fallbacks: Vec::new(),
        transport: get(o, "fetch").dyn_into().ok(),
        on_event: get(o, "onEvent").dyn_into().ok(),
        on_exhausted: get(o, "onExhausted").dyn_into().ok(),
        sensitive: SENSITIVE.iter().map(|&s| s.into()).collect(),
        signal: get(o, "signal").dyn_into().ok(),
    };
    if !o.is_object() {
        return Ok(opts);
    }
    let c = &mut opts.cfg;
    let b = &mut c.backoff;
    if let Some(n) = number(o, "maxAttempts") {
        c.max_attempts = n as u32;
    }
    b.initial_ms = ms(o, "initialMs").unwrap_or(b.initial_ms);
    // A lone initialMs above the default cap raises the cap with it.
    b.max_ms = ms(o, "maxMs").unwrap_or(b.max_ms.max(b.initial_ms));
    b.multiplier = number(o, "multiplier").unwrap_or(b.multiplier);
    if let Some(j) = get(o, "jitter").as_string().as_deref().and_then(Jitter::parse) {
        b.jitter = j;
    }
    c.deadline_ms = ms(o, "deadlineMs").unwrap_or(c.deadline_ms);
    c.attempt_timeout_ms = ms(o, "attemptTimeoutMs");
    c.max_retry_after_ms = ms(o, "maxRetryAfterMs").unwrap_or(c.max_retry_after_ms);
    c.idempotent = get(o, "idempotent").as_bool().unwrap_or(c.idempotent);
    let retry_on = get(o, "retryOn");
    if Array::is_array(&retry_on) {
        c.retry_on = StatusSet::empty();
        for s in Array::from(&retry_on).iter().filter_map(|s| s.as_f64()) {
            c.retry_on.insert(s as u16);
        }
    }
    match get(o, "budget").as_bool() {
        Some(false) => c.budget = None,
        Some(true) => {
            let d = BudgetConfig::default();
            c.budget = Some(BudgetConfig {
                max_tokens: number(o, "maxTokens").unwrap_or(d.max_tokens),
                token_ratio: number(o, "tokenRatio").unwrap_or(d.token_ratio),
            });
        }
        None => {}
    }
    match get(o, "breaker").as_bool() {
        Some(false) => c.breaker = None,
        Some(true) => {
            let d = BreakerConfig::default();
            c.breaker = Some(BreakerConfig {
                failure_threshold: number(o, "failureThreshold").map_or(d.failure_threshold, |n| n as u32),
                cooldown_ms: ms(o, "cooldownMs").unwrap_or(d.cooldown_ms),
            });
        }
        None => {}
    }
    c.validate().map_err(|e| range_error(&e.message))?;
    opts.fallbacks = items(&get(o, "fallbacks")).map(|f| fallback(&f)).collect();
    opts.sensitive.extend(items(&get(o, "sensitiveHeaders")).filter_map(|h| h.as_string()));
    Ok(opts)
}

fn fallback(f: &JsValue) -> Fallback {
    let string = |k| get(f, k).as_string();
    let pair = |p: JsValue| {
        let p = Array::from(&p);
        Some((p.get(0).as_string()?, p.get(1).as_string()?))
    };
    Fallback {
        model: string("model"),
        url: string("url").zip(string("origin")).map(|(href, origin)| RouteUrl { href, origin }),
        headers: items(&get(f, "headers")).filter_map(pair).collect(),
        max_attempts: number(f, "maxAttempts").map(|n| (n as u32).clamp(1, MAX_ATTEMPTS)),
    }
}

/// The items of an array (nothing for anything else).
fn items(v: &JsValue) -> impl Iterator<Item = JsValue> {
    let list = if Array::is_array(v) { Array::from(v) } else { Array::new() };
    list.into_iter()
}

fn number(o: &JsValue, k: &'static str) -> Option<f64> {
    get(o, k).as_f64().filter(|n| n.is_finite())
}

/// Milliseconds, rounded up to a whole one; checked against its range by `Config::validate`.
fn ms(o: &JsValue, k: &'static str) -> Option<u64> {
    number(o, k).map(|n| num::ceil(n.max(0.0)))
}
