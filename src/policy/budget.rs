//! A retry budget per client: gRPC's retry throttling, as a token bucket.
//!
//! # Why budgets and not only max attempts?
//! `maxAttempts = 4` bounds one call, not the client. When a provider degrades, every call
//! retries, and the provider sees up to four times its normal load exactly when it can least
//! take it. A budget bounds the *ratio* of retries to successes across all calls: once failures
//! outweigh successes, retries stop (the first attempt of each call still goes out), and they
//! resume as successes refill the bucket.
//!
//! # How
//! The bucket starts full at `max_tokens`. Each failed attempt takes one token; each success
//! returns `token_ratio`. A backoff retry is allowed only while the bucket holds more than half
//! of `max_tokens`.
//!
//! # What it does not refuse
//! A retry that waits for the server's own hint (a 429's `Retry-After`), or waits in line for a
//! route that is cooling or open, adds no load the provider did not ask for or will not admit:
//! the engine does not ask the budget about those, and a rate limit takes no token. The budget
//! bounds the blind retries — backoff after server errors, network errors and timeouts.
//!
//! # Default
//! `max_tokens` 100, `token_ratio` 0.2: 50 straight failures before retries pause, and retries
//! go on as long as fewer than one attempt in six fails (each failure costs what five successes
//! return) — Envoy's retry budget of 20 % of requests, in gRPC's form. gRPC's own defaults (10
//! and 0.1) are sized for one channel; for a client shared by every call of an app they switched
//! retries off after three calls that each recovered from one 503. AWS's retry quota is of the
//! same size (500 tokens at 5 a retry).

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    pub max_tokens: f64,
    pub token_ratio: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self { max_tokens: 100.0, token_ratio: 0.2 }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    cfg: BudgetConfig,
    tokens: f64,
}

impl Budget {
    pub fn new(cfg: BudgetConfig) -> Self {
        Self { cfg, tokens: cfg.max_tokens }
    }

    pub fn tokens(&self) -> f64 {
        self.tokens
    }

    pub fn can_retry(&self) -> bool {
        self.tokens > self.cfg.max_tokens / 2.0
    }

    pub fn record_failure(&mut self) {
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    pub fn record_success(&mut self) {
        self.tokens = (self.tokens + self.cfg.token_ratio).min(self.cfg.max_tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_half_is_spent_and_recovers_with_successes() {
        let mut b = Budget::new(BudgetConfig { max_tokens: 10.0, token_ratio: 0.1 });
        for _ in 0..4 {
            b.record_failure();
        }
        assert!(b.can_retry()); // 6 > 5
        b.record_failure();
        assert!(!b.can_retry()); // 5 is not > 5
        for _ in 0..10 {
            b.record_success();
        }
        assert!(b.can_retry());
        for _ in 0..1000 {
            b.record_success();
        }
        assert_eq!(b.tokens(), 10.0);
        for _ in 0..1000 {
            b.record_failure();
        }
        assert_eq!(b.tokens(), 0.0);
    }

    /// Routine flakiness (one attempt in ten fails) never switches retries off by default.
    #[test]
    fn default_rides_out_routine_flakiness() {
        let mut b = Budget::new(BudgetConfig::default());
        for i in 0..10_000 {
            if i % 10 == 0 {
                assert!(b.can_retry(), "at {i}");
                b.record_failure();
            } else {
                b.record_success();
            }
        }
        for _ in 0..49 {
            b.record_failure();
        }
        assert!(b.can_retry(), "49 straight failures");
        b.record_failure();
        assert!(!b.can_retry(), "the 50th pauses retries");
    }
}
