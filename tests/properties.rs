#![cfg(not(target_arch = "wasm32"))]
//! Invariants that must hold for every input, checked with proptest.

use llm_retry::policy::backoff::{Backoff, Jitter};
use llm_retry::policy::breaker::{Admit, Breaker, BreakerConfig, State};
use llm_retry::policy::classify::Observation;
use llm_retry::policy::config::Config;
use llm_retry::policy::engine::{Decision, Route, Session, Shared, WaitCause};
use llm_retry::policy::hints;
use llm_retry::policy::Headers;
use proptest::prelude::*;

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal), Just(Jitter::Decorrelated)]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    (0u64..100_000, 0u64..200_000, 1.0f64..10.0, jitter()).prop_map(|(a, b, multiplier, jitter)| Backoff {
        initial_ms: a.min(b),
        max_ms: a.max(b),
        multiplier,
        jitter,
    })
}

/// A scripted response: status, optional Retry-After seconds.
fn step() -> impl Strategy<Value = (u16, Option<u64>)> {
    (prop_oneof![Just(200u16), Just(429), Just(500), Just(503), Just(400), Just(0)], proptest::option::of(0u64..200))
}

proptest! {
    #[test]
    fn delay_is_within_zero_and_cap(b in backoff(), n in 0u32..200, prev in any::<u64>(), r in any::<f64>()) {
        prop_assert!(b.delay(n, prev, r) <= b.max_ms);
    }

    /// Drives whole sessions with random scripts: waits never undercut a hint, never end past the
    /// deadline, and attempts never exceed the limit.
    #[test]
    fn sessions_respect_hints_deadline_and_attempts(
        b in backoff(),
        max_attempts in 1u32..8,
        deadline_ms in 1u64..400_000,
        script in proptest::collection::vec(step(), 1..10),
        rands in proptest::collection::vec(0.0f64..1.0, 10),
    ) {
        let cfg = Config { backoff: b, max_attempts, deadline_ms, budget: None, breaker: None, ..Config::default() };
        let mut shared = Shared::new(&cfg);
        let mut s = Session::new(&cfg, vec![Route::new("p", max_attempts)], true);
        let start = 1_700_000_000_000u64;
        let (mut now, mut i, mut attempts) = (start, 0usize, 0u32);
        let mut seen: Option<Observation> = None;
        let mut last_hint: Option<u64> = None;
        loop {
            match s.next(&mut shared, seen.as_ref(), now, rands[i % rands.len()]) {
                Decision::Attempt { deadline_ms: left, .. } => {
                    attempts += 1;
                    prop_assert!(now < start + deadline_ms, "an attempt started past the deadline");
                    prop_assert_eq!(now + left, start + deadline_ms);
                    let (status, hint) = script[i % script.len()];
                    i += 1;
                    now += 1;
                    last_hint = hint.filter(|_| status != 0).map(|h| h * 1000);
                    seen = Some(if status == 0 {
                        Observation::NetworkError
                    } else {
                        let mut h = Headers::new();
                        if let Some(secs) = hint { h.push("retry-after", secs.to_string()); }
                        Observation::Response { status, headers: h, body: None }
                    });
                }
                Decision::Wait { ms, cause } => {
                    if let (Some(h), WaitCause::Backoff | WaitCause::Hint(_)) = (last_hint, cause) {
                        prop_assert!(ms >= h, "wait {ms} undercuts hint {h}");
                    }
                    if let (Some(h), WaitCause::Hint(_)) = (last_hint, cause) {
                        prop_assert!(ms <= h + (h / 10).min(1_000), "wait {ms} overshoots hint {h} by more than the jitter");
                    }
                    now += ms;
                    prop_assert!(now < start + deadline_ms, "slept past the deadline");
                }
                Decision::Slot { .. } => prop_assert!(false, "pacing is not shared here"),
                Decision::Done(_) => break,
            }
        }
        prop_assert!(attempts <= max_attempts);
    }

    #[test]
    fn an_open_breaker_never_admits_before_its_cooldown(
        threshold in 1u32..10,
        cooldown in 0u64..100_000,
        events in proptest::collection::vec((0u8..3, 0u64..5_000), 1..60),
    ) {
        let mut b = Breaker::new(BreakerConfig { failure_threshold: threshold, cooldown_ms: cooldown, max_cooldown_ms: cooldown * 4 });
        let mut now = 0u64;
        let mut opened_at: Option<u64> = None;
        for (kind, dt) in events {
            now += dt;
            match kind {
                0 => if b.record_failure(now).is_some_and(|(_, to)| to == State::Open) { opened_at = Some(now) },
                1 => { b.record_success(now); opened_at = None; }
                _ => {
                    let admit = b.check(now);
                    if admit == Admit::Yes {
                        b.admit(now);
                    }
                    if let (Admit::Yes, Some(t)) = (admit, opened_at) {
                        prop_assert!(now >= t + cooldown, "admitted at {now}, opened at {t}");
                        opened_at = None;
                    }
                }
            }
        }
    }

    #[test]
    fn hint_parsing_survives_any_header(v in ".*", status in 0u16..1000, now in any::<u64>()) {
        let mut h = Headers::new();
        for name in hints::HEADER_NAMES {
            h.push(*name, v.clone());
        }
        let _ = hints::wait_hint(&h, status, now);
        let _ = hints::should_retry(&h);
        let _ = hints::limits(&h, now);
    }
}
