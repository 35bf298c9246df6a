//! Exponential backoff with the jitter modes of the AWS Architecture Blog study
//! ("Exponential Backoff and Jitter", 2015).
//!
//! Without jitter, every client that failed at the same moment retries at the same moment, and
//! the retry storm arrives in synchronized waves. Full jitter spreads each wave uniformly over
//! `[0, d]`; it sends the fewest requests and finishes soonest in that study, so it is the default.
//!
//! The base delay before retry `n` (n = 1 for the first retry) is
//! `d(n) = min(max_ms, initial_ms × multiplier^(n−1))`.
//!
//! | mode           | delay                                         |
//! |----------------|-----------------------------------------------|
//! | `None`         | `d(n)`                                        |
//! | `Full`         | `uniform(0, d(n))`                            |
//! | `Equal`        | `d(n)/2 + uniform(0, d(n)/2)`                 |
//! | `Decorrelated` | `min(max_ms, uniform(initial_ms, prev × 3))` |
//!
//! # Default
//! `initial_ms` 1000, `max_ms` 30 000, `multiplier` 2, jitter `Full`.

/// How randomness is mixed into the exponential delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Jitter {
    None,
    #[default]
    Full,
    Equal,
    Decorrelated,
}

impl Jitter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Full => "full",
            Self::Equal => "equal",
            Self::Decorrelated => "decorrelated",
        }
    }
}

/// A validated backoff strategy (see [`crate::policy::config`] for validation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub multiplier: f64,
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial_ms: 1000, max_ms: 30_000, multiplier: 2.0, jitter: Jitter::Full }
    }
}

impl Backoff {
    /// The un-jittered delay before retry `n` (1-based), capped at `max_ms`.
    pub fn base(&self, n: u32) -> u64 {
        let exp = n.saturating_sub(1).min(1024);
        let d = self.initial_ms as f64 * crate::num::powi(self.multiplier, exp);
        // NaN and overflow both land on the cap; `as` saturates.
        if d.is_finite() && d < self.max_ms as f64 {
            d as u64
        } else {
            self.max_ms
        }
    }

    /// The delay before retry `n`, given the previous delay (for decorrelated jitter) and a
    /// random number in `[0, 1)`. Always within `[0, max_ms]`.
    pub fn delay(&self, n: u32, prev_ms: u64, rand: f64) -> u64 {
        let r = if rand.is_finite() { rand.clamp(0.0, 1.0) } else { 0.0 };
        let d = self.base(n);
        let ms = match self.jitter {
            Jitter::None => d,
            Jitter::Full => scale(d, r),
            Jitter::Equal => d / 2 + scale(d - d / 2, r),
            Jitter::Decorrelated => {
                let lo = self.initial_ms;
                let hi = prev_ms.max(lo).saturating_mul(3);
                lo + scale(hi - lo, r)
            }
        };
        ms.min(self.max_ms)
    }
}

/// `floor(d × r)` for `r ∈ [0, 1]`, never above `d`.
fn scale(d: u64, r: f64) -> u64 {
    ((d as f64 * r) as u64).min(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(jitter: Jitter) -> Backoff {
        Backoff { initial_ms: 100, max_ms: 1000, multiplier: 2.0, jitter }
    }

    #[test]
    fn exponential_sequence_is_capped() {
        let seq: Vec<u64> = (1..=6).map(|n| b(Jitter::None).delay(n, 0, 0.7)).collect();
        assert_eq!(seq, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b(Jitter::None).delay(u32::MAX, 0, 0.5), 1000);
    }

    #[test]
    fn full_jitter_spans_zero_to_d() {
        let s = b(Jitter::Full);
        assert_eq!(s.delay(3, 0, 0.0), 0);
        assert_eq!(s.delay(3, 0, 0.5), 200);
        assert_eq!(s.delay(3, 0, 0.999_999), 399);
    }

    #[test]
    fn equal_jitter_keeps_half() {
        let s = b(Jitter::Equal);
        assert_eq!(s.delay(3, 0, 0.0), 200);
        assert_eq!(s.delay(3, 0, 0.5), 300);
        assert_eq!(s.delay(1, 0, 0.999_999), 99);
    }

    #[test]
    fn decorrelated_grows_from_previous() {
        let s = b(Jitter::Decorrelated);
        assert_eq!(s.delay(1, 0, 0.0), 100);
        assert_eq!(s.delay(1, 0, 0.5), 200); // uniform(100, 300)
        assert_eq!(s.delay(2, 200, 0.5), 350); // uniform(100, 600)
        assert_eq!(s.delay(3, 900, 0.99), 1000); // capped
    }

    #[test]
    fn bad_random_numbers_stay_in_range() {
        for r in [f64::NAN, -1.0, 2.0, f64::INFINITY] {
            for j in [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
                assert!(b(j).delay(4, 5000, r) <= 1000);
            }
        }
    }
}
