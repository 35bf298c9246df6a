//! The options: checked by `options.js` (types, unknown keys, ranges of single values, each error
//! naming the option as the user wrote it) and flattened into one plain object, which this reads
//! into a [`Config`], whose own `validate` checks the rules between options (a `RangeError`
//! naming the option).
//!
//! Read defensively all the same: a value of the wrong type counts as absent, never a panic.

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::errors::{get, range_error};
use super::values;
use crate::num;
use crate::policy::backoff::Jitter;
use crate::policy::breaker::BreakerConfig;
use crate::policy::budget::BudgetConfig;
use crate::policy::classify::StatusSet;
use crate::policy::config::Config;
use crate::text::cat;

pub struct Options {
    pub cfg: Config,
    /// The checked options object, which `request.js` and `run.js` read again for each call's routes
    /// (fallbacks, sensitive headers).
    pub js: JsValue,
    pub transport: Option<Function>,
    pub on_event: Option<Function>,
    pub on_exhausted: Option<Function>,
    /// `retry(fn)` only: the caller's signal.
    pub signal: Option<AbortSignal>,
    /// Health is shared through a store (`health`): its link lives in `js`.
    pub health: bool,
    /// The health store also paces (`health.store.pace`).
    pub share_pacing: bool,
}

/// Checks the user's options (`options.js`) and reads them (`undefined`: all defaults).
pub fn read(options: &JsValue, for_retry: bool) -> Result<Options, JsValue> {
    let o = values::check_options(options, for_retry)?;
    let mut opts = Options {
        cfg: Config::default(),
        transport: get(&o, "fetch").dyn_into().ok(),
        on_event: get(&o, "onEvent").dyn_into().ok(),
        on_exhausted: get(&o, "onExhausted").dyn_into().ok(),
        signal: get(&o, "signal").dyn_into().ok(),
        health: get(&o, "health").is_object(),
        share_pacing: get(&o, "sharePacing").is_truthy(),
        js: o,
    };
    let o = &opts.js;
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
    if let Some(deadline) = ms(o, "deadlineMs") {
        c.deadline_ms = deadline;
        c.deadline_cuts_attempts = true;
    }
    c.attempt_timeout_ms = ms(o, "attemptTimeoutMs");
    c.first_token_timeout_ms = ms(o, "firstTokenTimeoutMs");
    c.idle_timeout_ms = ms(o, "idleTimeoutMs");
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
            let cooldown_ms = ms(o, "cooldownMs").unwrap_or(d.cooldown_ms);
            c.breaker = Some(BreakerConfig {
                failure_threshold: number(o, "failureThreshold").map_or(d.failure_threshold, |n| n as u32),
                cooldown_ms,
                // A lone cooldownMs above the default cap raises the cap with it.
                max_cooldown_ms: ms(o, "maxCooldownMs").unwrap_or(d.max_cooldown_ms.max(cooldown_ms)),
            });
        }
        None => {}
    }
    c.pacing = get(o, "pacing").as_bool().unwrap_or(c.pacing);
    c.validate().map_err(|e| range_error(&e.message))?;
    Ok(opts)
}

/// A call's own settings: the client's `base` with what its per-call options (as `options.js`
/// checked them: `callOptions`) override, or `None` when it overrides nothing.
pub fn per_call(base: &Config, o: &JsValue) -> Result<Option<Config>, JsValue> {
    if !o.is_object() {
        return Ok(None);
    }
    let mut c = *base;
    if let Some(n) = number(o, "maxAttempts") {
        c.max_attempts = n as u32;
    }
    if let Some(deadline) = ms(o, "deadlineMs") {
        c.deadline_ms = deadline;
        c.deadline_cuts_attempts = true;
    }
    c.attempt_timeout_ms = ms(o, "attemptTimeoutMs").or(c.attempt_timeout_ms);
    c.first_token_timeout_ms = ms(o, "firstTokenTimeoutMs").or(c.first_token_timeout_ms);
    c.idle_timeout_ms = ms(o, "idleTimeoutMs").or(c.idle_timeout_ms);
    c.idempotent = get(o, "idempotent").as_bool().unwrap_or(c.idempotent);
    // Only this call's own values can be out of range (the client's were checked): named as the
    // user wrote them (`init.retry.deadlineMs`).
    let path = get(o, "path").as_string().unwrap_or_default();
    c.validate().map_err(|e| range_error(&cat!(path, ".", e.message)))?;
    Ok(Some(c))
}

fn number(o: &JsValue, k: &'static str) -> Option<f64> {
    get(o, k).as_f64().filter(|n| n.is_finite())
}

/// Milliseconds, rounded up to a whole one; checked against its range by `Config::validate`.
fn ms(o: &JsValue, k: &'static str) -> Option<u64> {
    number(o, k).map(|n| num::ceil(n.max(0.0)))
}
