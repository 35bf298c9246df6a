//! The options: checked by `options.js` (types, unknown keys, ranges of single values, each error
//! naming the option as the user wrote it) and handed over as numbers (the settings) beside one
//! plain object (the functions, the routes, the health link), which this reads into a [`Config`]
//! and [`Options`]; the config's own `validate` checks the rules between options (a `RangeError`
//! naming the option).
//!
//! Read defensively all the same: a value of the wrong type counts as absent, never a panic.

use js_sys::{Array, Function};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::errors::{get, range_error};
use super::{drive, values};
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

/// The options as `options.js` writes them into the wasm's memory (`checkOptions`), as numbers:
/// first what a call may set of its own ([`CALL_LEN`] of them, as a call's shape carries them:
/// `callNumbers` in names.js), then the client's. NaN where an option is not set; a boolean as
/// 1 or 0. Read so, the options cross in one call where reading each by name took three (its
/// name made a string, the read through a catching binding, the number taken out).
pub const CALL_LEN: usize = 6;
const LEN: usize = CALL_LEN + 16;
/// `backoff.jitter` by its index in `options.js` JITTERS.
const JITTERS: [Jitter; 4] = [Jitter::Full, Jitter::Equal, Jitter::Decorrelated, Jitter::None];

/// Checks the user's options (`options.js`) and reads them (`undefined`: all defaults). Hands
/// `names.js` the wasm's memory first, which the settings (and later each call's shape) are
/// written into.
pub fn read(options: &JsValue, for_retry: bool) -> Result<Options, JsValue> {
    values::set_memory(&wasm_bindgen::memory());
    let mut n = [f64::NAN; LEN];
    let o = values::check_options(options, for_retry, drive::slots_at(&mut n))?;
    let n = Numbers(&n);
    let mut opts = Options {
        cfg: Config::default(),
        transport: get(&o, "fetch").dyn_into().ok(),
        on_event: get(&o, "onEvent").dyn_into().ok(),
        on_exhausted: get(&o, "onExhausted").dyn_into().ok(),
        signal: get(&o, "signal").dyn_into().ok(),
        health: n.flag(CALL_LEN + 14) == Some(true),
        share_pacing: n.flag(CALL_LEN + 15) == Some(true),
        js: o,
    };
    let c = &mut opts.cfg;
    n.apply_call(c);
    let b = &mut c.backoff;
    b.initial_ms = n.ms(CALL_LEN).unwrap_or(b.initial_ms);
    // A lone initialMs above the default cap raises the cap with it.
    b.max_ms = n.ms(CALL_LEN + 1).unwrap_or(b.max_ms.max(b.initial_ms));
    b.multiplier = n.number(CALL_LEN + 2).unwrap_or(b.multiplier);
    if let Some(&j) = n.number(CALL_LEN + 3).and_then(|i| JITTERS.get(i as usize)) {
        b.jitter = j;
    }
    c.max_retry_after_ms = n.ms(CALL_LEN + 4).unwrap_or(c.max_retry_after_ms);
    let retry_on = if n.flag(CALL_LEN + 5) == Some(true) { get(&opts.js, "retryOn") } else { JsValue::UNDEFINED };
    if Array::is_array(&retry_on) {
        c.retry_on = StatusSet::empty();
        for s in Array::from(&retry_on).iter().filter_map(|s| s.as_f64()) {
            c.retry_on.insert(s as u16);
        }
    }
    match n.flag(CALL_LEN + 6) {
        Some(false) => c.budget = None,
        Some(true) => {
            let d = BudgetConfig::default();
            c.budget = Some(BudgetConfig {
                max_tokens: n.number(CALL_LEN + 7).unwrap_or(d.max_tokens),
                token_ratio: n.number(CALL_LEN + 8).unwrap_or(d.token_ratio),
            });
        }
        None => {}
    }
    match n.flag(CALL_LEN + 9) {
        Some(false) => c.breaker = None,
        Some(true) => {
            let d = BreakerConfig::default();
            let cooldown_ms = n.ms(CALL_LEN + 11).unwrap_or(d.cooldown_ms);
            c.breaker = Some(BreakerConfig {
                failure_threshold: n.number(CALL_LEN + 10).map_or(d.failure_threshold, |x| x as u32),
                cooldown_ms,
                // A lone cooldownMs above the default cap raises the cap with it.
                max_cooldown_ms: n.ms(CALL_LEN + 12).unwrap_or(d.max_cooldown_ms.max(cooldown_ms)),
            });
        }
        None => {}
    }
    c.pacing = n.flag(CALL_LEN + 13).unwrap_or(c.pacing);
    c.validate().map_err(|e| range_error(&e.message))?;
    Ok(opts)
}

/// A call's own settings: the client's `base` with what its per-call options override (`n`, as
/// its shape carries them: `callNumbers` in names.js). The call object's `call`, those options as
/// `options.js` checked them (`callOptions`), is read only to name one out of range.
pub fn per_call(base: &Config, n: &[f64], v: &JsValue) -> Result<Config, JsValue> {
    let mut c = *base;
    Numbers(n).apply_call(&mut c);
    // Only this call's own values can be out of range (the client's were checked): named as the
    // user wrote them (`init.retry.deadlineMs`).
    c.validate().map_err(|e| {
        range_error(&cat!(get(&get(v, "call"), "path").as_string().unwrap_or_default(), ".", e.message))
    })?;
    Ok(c)
}

/// Options as numbers (see [`CALL_LEN`]); a slot out of reach reads as unset.
struct Numbers<'a>(&'a [f64]);

impl Numbers<'_> {
    fn number(&self, i: usize) -> Option<f64> {
        self.0.get(i).copied().filter(|n| n.is_finite())
    }

    /// Milliseconds, rounded up to a whole one; checked against its range by `Config::validate`.
    fn ms(&self, i: usize) -> Option<u64> {
        self.number(i).map(|n| num::ceil(n.max(0.0)))
    }

    fn flag(&self, i: usize) -> Option<bool> {
        self.number(i).map(|n| n != 0.0)
    }

    /// What a call may set of its own: attempts, the deadline, timeouts, idempotency.
    fn apply_call(&self, c: &mut Config) {
        if let Some(n) = self.number(0) {
            c.max_attempts = n as u32;
        }
        if let Some(deadline) = self.ms(1) {
            c.deadline_ms = deadline;
            c.deadline_cuts_attempts = true;
        }
        c.attempt_timeout_ms = self.ms(2).or(c.attempt_timeout_ms);
        c.first_token_timeout_ms = self.ms(3).or(c.first_token_timeout_ms);
        c.idle_timeout_ms = self.ms(4).or(c.idle_timeout_ms);
        c.idempotent = self.flag(5).unwrap_or(c.idempotent);
    }
}
