//! A retry-storm simulation: many concurrent calls through one client against a rate-limited
//! provider, on a simulated clock, decided by the real engine. It reproduces the AWS jitter
//! study's comparison (requests sent, time to finish) and shows what the retry budget saves.
//!
//! The provider admits `capacity_per_sec` requests a second (a token bucket holding one
//! second's worth) and answers the rest with a bare 429, no wait hint — so only the client's
//! backoff, jitter and budget decide when the retries land. Built only with the `sim` feature
//! (the demo page); the npm package does not carry it.

use alloc::collections::BinaryHeap;
use alloc::{vec, vec::Vec};
use core::cmp::Reverse;

use crate::policy::classify::Observation;
use crate::policy::config::Config;
use crate::policy::engine::{Decision, Outcome, Route, Session, Shared};
use crate::policy::Headers;
use crate::rng::next_f64;

#[derive(Clone, Debug)]
pub struct Storm {
    /// Calls that all start at t = 0.
    pub calls: u32,
    pub capacity_per_sec: u32,
    /// Time from sending a request to its response.
    pub latency_ms: u64,
    /// Width of a timeline bucket.
    pub bucket_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StormResult {
    /// Requests the provider received, retries included.
    pub requests: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// When the last call ended.
    pub finish_ms: u64,
    /// Requests received per bucket.
    pub timeline: Vec<u32>,
}

/// Runs the simulation; `seed` makes it repeatable.
pub fn storm(s: &Storm, cfg: &Config, seed: u64) -> StormResult {
    let mut shared = Shared::new(cfg);
    let mut sessions: Vec<(Session, Option<Observation>)> =
        (0..s.calls).map(|_| (Session::new(cfg, vec![Route::new("provider", cfg.max_attempts)], true), None)).collect();
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = (0..sessions.len()).map(|i| Reverse((0, i))).collect();
    let mut rng = seed | 1;
    let per_ms = s.capacity_per_sec as f64 / 1000.0;
    let (mut tokens, mut refilled_at) = (s.capacity_per_sec as f64, 0u64);
    let bucket = s.bucket_ms.max(1);
    let mut out = StormResult::default();
    while let Some(Reverse((now, i))) = queue.pop() {
        let (session, seen) = &mut sessions[i];
        match session.next(&mut shared, seen.as_ref(), now, next_f64(&mut rng)) {
            Decision::Attempt { .. } => {
                out.requests += 1;
                let slot = (now / bucket) as usize;
                if out.timeline.len() <= slot {
                    out.timeline.resize(slot + 1, 0);
                }
                out.timeline[slot] += 1;
                tokens = (tokens + (now - refilled_at) as f64 * per_ms).min(s.capacity_per_sec as f64);
                refilled_at = now;
                let status = if tokens >= 1.0 {
                    tokens -= 1.0;
                    200
                } else {
                    429
                };
                *seen = Some(Observation::Response { status, headers: Headers::new(), body: None });
                queue.push(Reverse((now + s.latency_ms, i)));
            }
            Decision::Wait { ms, .. } => queue.push(Reverse((now + ms, i))),
            // Pacing is not shared here: no bucket to ask.
            Decision::Slot { .. } => queue.push(Reverse((now, i))),
            Decision::Done(outcome) => {
                if outcome == Outcome::Success {
                    out.succeeded += 1;
                } else {
                    out.failed += 1;
                }
                out.finish_ms = out.finish_ms.max(now);
            }
        }
    }
    out
}

/// Sampled backoff schedules: `runs` rows of the waits before each retry (no server hints).
pub fn schedules(cfg: &Config, runs: u32, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = seed | 1;
    (0..runs)
        .map(|_| {
            let mut prev = 0;
            (1..cfg.max_attempts)
                .map(|n| {
                    prev = cfg.backoff.delay(n, prev, next_f64(&mut rng));
                    prev
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::backoff::Jitter;
    use crate::policy::budget::BudgetConfig;

    fn cfg(jitter: Jitter, budget: bool) -> Config {
        // Pacing off: these compare what backoff, jitter and the budget do on their own.
        let mut c = Config { max_attempts: 8, deadline_ms: 600_000, breaker: None, pacing: false, ..Config::default() };
        c.backoff.jitter = jitter;
        c.backoff.initial_ms = 100;
        c.budget = budget.then(BudgetConfig::default);
        c
    }

    const STORM: Storm = Storm { calls: 100, capacity_per_sec: 20, latency_ms: 20, bucket_ms: 500 };

    #[test]
    fn every_call_ends_and_is_counted() {
        let r = storm(&STORM, &cfg(Jitter::Full, false), 7);
        assert_eq!(r.succeeded + r.failed, 100);
        assert_eq!(r.timeline.iter().sum::<u32>(), r.requests);
        assert!(r.requests >= 100);
    }

    /// Synchronized retries arrive in waves the provider turns away together; jittered ones
    /// spread over the gaps, so the storm drains sooner.
    #[test]
    fn jitter_finishes_sooner_than_synchronized_retries() {
        let none = storm(&STORM, &cfg(Jitter::None, false), 7);
        for j in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let r = storm(&STORM, &cfg(j, false), 7);
            assert!(r.finish_ms * 3 < none.finish_ms * 2, "{j:?} {} vs none {}", r.finish_ms, none.finish_ms);
        }
    }

    #[test]
    fn the_budget_sends_fewer_requests() {
        let off = storm(&STORM, &cfg(Jitter::Full, false), 7);
        let on = storm(&STORM, &cfg(Jitter::Full, true), 7);
        assert!(on.requests < off.requests, "budget {} vs none {}", on.requests, off.requests);
    }

    /// The defaults pace the retries at the rate the provider served (learned from its bare
    /// 429s), so every call is served, with fewer than two requests per call; without pacing
    /// the budget bounds the requests by failing most calls fast.
    #[test]
    fn the_defaults_pace_the_storm_and_serve_every_call() {
        let mut paced = Config { max_attempts: 8, deadline_ms: 600_000, ..Config::default() };
        paced.backoff.initial_ms = 100;
        let r = storm(&STORM, &paced, 7);
        assert_eq!(r.succeeded, 100);
        assert!(r.requests < 200, "{} requests", r.requests);
        let unpaced = storm(&STORM, &Config { pacing: false, ..paced }, 7);
        assert!(unpaced.failed > 50, "{} failed", unpaced.failed);
    }

    #[test]
    fn schedules_follow_the_backoff() {
        let rows = schedules(&cfg(Jitter::None, false), 2, 1);
        assert_eq!(rows, vec![vec![100, 200, 400, 800, 1600, 3200, 6400]; 2]);
    }
}
