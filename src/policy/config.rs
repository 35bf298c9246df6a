//! The validated settings of a client, their defaults, and their range checks.
//!
//! Option names in errors are the JavaScript ones (`backoff.maxMs`), since that is what a
//! user wrote. Type checks belong to the host layer; this module checks ranges and relations.

use alloc::string::String;

use super::backoff::Backoff;
use super::breaker::BreakerConfig;
use super::budget::BudgetConfig;
use super::classify::StatusSet;
use crate::text::cat;

/// Every setting of a client, with the seeds' defaults: 4 attempts, exponential backoff with
/// full jitter from 1 s to 30 s, one minute overall.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Attempts per route, counting the first. Default 4.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Bounds the call's waits and new attempts, and (when `deadline_cuts_attempts`) the attempt
    /// in flight too. Default 60 000.
    pub deadline_ms: u64,
    /// The deadline also aborts an attempt in flight: set when the user set `deadlineMs`. By
    /// default it does not, so a healthy slow answer (a reasoning model's minutes) is bounded by
    /// the caller's own timeout (the SDK's: 10 minutes in openai-node), not cut at 60 s.
    pub deadline_cuts_attempts: bool,
    /// Bounds one attempt until response headers arrive. Default none (the deadline bounds it).
    pub attempt_timeout_ms: Option<u64>,
    pub retry_on: StatusSet,
    /// A server hint longer than this is not waited for. Default 60 000.
    pub max_retry_after_ms: u64,
    /// Treat every request as safe to repeat after a timeout. Default false.
    pub idempotent: bool,
    /// `None` turns the budget off.
    pub budget: Option<BudgetConfig>,
    /// `None` turns the breaker off.
    pub breaker: Option<BreakerConfig>,
    /// Pace sends by what the provider's rate-limit headers and 429s teach. Default true.
    pub pacing: bool,
    /// An event stream with no content event this long after its headers is a failed attempt.
    /// Default none (the deadline bounds it).
    pub first_token_timeout_ms: Option<u64>,
    /// After a stream's commit, the longest gap between chunks before its body errors. Default none.
    pub idle_timeout_ms: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff: Backoff::default(),
            deadline_ms: 60_000,
            deadline_cuts_attempts: false,
            attempt_timeout_ms: None,
            retry_on: StatusSet::default(),
            max_retry_after_ms: 60_000,
            idempotent: false,
            budget: Some(BudgetConfig::default()),
            breaker: Some(BreakerConfig::default()),
            pacing: true,
            first_token_timeout_ms: None,
            idle_timeout_ms: None,
        }
    }
}

/// An option out of range: `option` is its path as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeError {
    pub option: &'static str,
    pub message: String,
}

impl core::fmt::Display for RangeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The longest wait or deadline accepted: a day. Longer is almost surely a unit mistake.
pub const MAX_MS: u64 = 86_400_000;
/// Attempts per route at most.
pub const MAX_ATTEMPTS: u32 = 100;

fn err(option: &'static str, message: String) -> Result<(), RangeError> {
    Err(RangeError { option, message })
}

fn check_ms(option: &'static str, v: u64, min: u64) -> Result<(), RangeError> {
    if v < min || v > MAX_MS {
        return err(option, cat!(option, " must be between ", min, " and ", MAX_MS, " ms (got ", v, ")"));
    }
    Ok(())
}

/// Checks `max_attempts` on its own (routes have their own).
fn check_attempts(option: &'static str, v: u32) -> Result<(), RangeError> {
    if v == 0 || v > MAX_ATTEMPTS {
        return err(option, cat!(option, " must be between 1 and ", MAX_ATTEMPTS, " (got ", v, ")"));
    }
    Ok(())
}

impl Config {
    pub fn validate(&self) -> Result<(), RangeError> {
        check_attempts("maxAttempts", self.max_attempts)?;
        let b = &self.backoff;
        check_ms("backoff.initialMs", b.initial_ms, 0)?;
        check_ms("backoff.maxMs", b.max_ms, 0)?;
        if b.max_ms < b.initial_ms {
            let (max, init) = (b.max_ms, b.initial_ms);
            return err(
                "backoff.maxMs",
                cat!("backoff.maxMs must be ≥ backoff.initialMs (got ", max, " < ", init, ")"),
            );
        }
        if !(b.multiplier.is_finite() && (1.0..=100.0).contains(&b.multiplier)) {
            return err(
                "backoff.multiplier",
                cat!("backoff.multiplier must be between 1 and 100 (got ", b.multiplier, ")"),
            );
        }
        check_ms("deadlineMs", self.deadline_ms, 1)?;
        if let Some(t) = self.attempt_timeout_ms {
            check_ms("attemptTimeoutMs", t, 1)?;
        }
        if let Some(t) = self.first_token_timeout_ms {
            check_ms("firstTokenTimeoutMs", t, 1)?;
        }
        if let Some(t) = self.idle_timeout_ms {
            check_ms("idleTimeoutMs", t, 1)?;
        }
        check_ms("maxRetryAfterMs", self.max_retry_after_ms, 0)?;
        if let Some(bu) = &self.budget {
            if !(bu.max_tokens.is_finite() && bu.max_tokens >= 1.0 && bu.max_tokens <= 1e6) {
                return err(
                    "budget.maxTokens",
                    cat!("budget.maxTokens must be between 1 and 1000000 (got ", bu.max_tokens, ")"),
                );
            }
            if !(bu.token_ratio.is_finite() && bu.token_ratio > 0.0 && bu.token_ratio <= bu.max_tokens) {
                return err(
                    "budget.tokenRatio",
                    cat!("budget.tokenRatio must be > 0 and ≤ budget.maxTokens (got ", bu.token_ratio, ")"),
                );
            }
        }
        if let Some(br) = &self.breaker {
            if br.failure_threshold == 0 {
                return err("breaker.failureThreshold", "breaker.failureThreshold must be ≥ 1 (got 0)".into());
            }
            check_ms("breaker.cooldownMs", br.cooldown_ms, 0)?;
            check_ms("breaker.maxCooldownMs", br.max_cooldown_ms, 0)?;
            if br.max_cooldown_ms < br.cooldown_ms {
                let (max, first) = (br.max_cooldown_ms, br.cooldown_ms);
                return err(
                    "breaker.maxCooldownMs",
                    cat!("breaker.maxCooldownMs must be ≥ breaker.cooldownMs (got ", max, " < ", first, ")"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_option_and_value() {
        let mut c = Config::default();
        c.backoff.initial_ms = 500;
        c.backoff.max_ms = 100;
        let e = c.validate().unwrap_err();
        assert_eq!(e.option, "backoff.maxMs");
        assert_eq!(e.message, "backoff.maxMs must be ≥ backoff.initialMs (got 100 < 500)");

        let c = Config { max_attempts: 0, ..Config::default() };
        assert_eq!(c.validate().unwrap_err().option, "maxAttempts");
        let mut c = Config::default();
        c.backoff.multiplier = f64::NAN;
        assert_eq!(c.validate().unwrap_err().option, "backoff.multiplier");
        let c = Config { deadline_ms: 0, ..Config::default() };
        assert_eq!(c.validate().unwrap_err().option, "deadlineMs");
    }
}
