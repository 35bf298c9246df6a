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
//! returns `token_ratio`. A retry is allowed only while the bucket holds more than half of
//! `max_tokens`.
//!
//! # Default
//! `max_tokens` 10, `token_ratio` 0.1 (gRPC's defaults): after about five straight failures,
//! retries pause until roughly ten successes per failure have come back.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    pub max_tokens: f64,
    pub token_ratio: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self { max_tokens: 10.0, token_ratio: 0.1 }
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
        let mut b = Budget::new(BudgetConfig::default());
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
}
