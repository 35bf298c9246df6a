#![cfg(not(target_arch = "wasm32"))]
//! Drives the engine with scripted outcomes and a fake clock, the way the host does, and checks
//! the cases of the seed articles by what a server would have seen: how many requests, and when.

use llm_retry::policy::backoff::Jitter;
use llm_retry::policy::breaker::BreakerConfig;
use llm_retry::policy::classify::{Observation, Reason};
use llm_retry::policy::config::Config;
use llm_retry::policy::engine::{Decision, Event, Outcome, Route, Session, Shared, WaitCause};
use llm_retry::policy::Headers;

/// What a scripted server answers to one attempt.
#[derive(Clone, Copy)]
enum Step {
    Status(u16, &'static [(&'static str, &'static str)], Option<&'static str>),
    Timeout(u64),
    Network,
}

use Step::*;

/// Runs one call; returns the outcome, the times at which attempts were sent (per route), and
/// the events.
struct Run {
    outcome: Outcome,
    sent: Vec<(usize, u64)>,
    events: Vec<Event>,
    waits: Vec<(u64, WaitCause)>,
}

fn run(
    cfg: &Config,
    shared: &mut Shared,
    routes: &[&str],
    idempotent: bool,
    script: &[Step],
    start: u64,
    rand: f64,
) -> Run {
    let routes = routes.iter().map(|k| Route::new(*k, cfg.max_attempts)).collect();
    play(Session::new(cfg, routes, idempotent), shared, script, start, rand)
}

/// Plays `script` against session `s` from `start`, as the host would.
fn play(mut s: Session, shared: &mut Shared, script: &[Step], start: u64, rand: f64) -> Run {
    let mut now = start;
    let mut seen: Option<Observation> = None;
    let mut steps = script.iter().cloned();
    let (mut sent, mut events, mut waits) = (vec![], vec![], vec![]);
    let outcome = loop {
        let d = s.next(shared, seen.as_ref(), now, rand);
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
        match d {
            Decision::Attempt { route, timeout_ms, deadline_ms, .. } => {
                // The host's timer: the attempt's own, or (for a stream's first token) the deadline.
                let timeout_ms = timeout_ms.unwrap_or(deadline_ms);
                sent.push((route, now));
                seen = Some(match steps.next().expect("script ran out") {
                    Status(status, h, body) => {
                        now += 5;
                        Observation::Response {
                            status,
                            headers: h.iter().copied().collect::<Headers>(),
                            body: body.map(Into::into),
                        }
                    }
                    Timeout(after) => {
                        now += after.min(timeout_ms);
                        Observation::Timeout
                    }
                    Network => Observation::NetworkError,
                });
            }
            Decision::Wait { ms, cause } => {
                waits.push((ms, cause));
                now += ms;
            }
            // Pacing is not shared in these runs (see the tests of shared pacing below).
            Decision::Slot { .. } => s.grant(None),
            Decision::Done(o) => break o,
        }
    };
    Run { outcome, sent, events, waits }
}

fn cfg() -> Config {
    Config { breaker: None, budget: None, ..Config::default() }
}

/// One attempt a call, and breakers that open after `failure_threshold` failures for a fixed
/// `cooldown_ms`.
fn one_attempt_breaker(failure_threshold: u32, cooldown_ms: u64) -> Config {
    let breaker = BreakerConfig { failure_threshold, cooldown_ms, max_cooldown_ms: cooldown_ms };
    Config { max_attempts: 1, breaker: Some(breaker), ..cfg() }
}

fn once(script: &[Step]) -> Run {
    let c = cfg();
    run(&c, &mut Shared::new(&c), &["p"], false, script, 1_000_000, 0.25)
}

fn gaps(r: &Run) -> Vec<u64> {
    r.sent.windows(2).map(|w| w[1].1 - w[0].1).collect()
}

const QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;

#[test]
fn rate_limit_then_hint_then_success() {
    let r = once(&[Status(429, &[], None), Status(429, &[("Retry-After", "1")], None), Status(200, &[], None)]);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.sent.len(), 3);
    assert!(gaps(&r)[1] >= 1000, "{:?}", gaps(&r));
    assert_eq!(r.waits[1].1, WaitCause::Hint(llm_retry::policy::hints::HintSource::RetryAfter));
}

/// A random number is asked for only when a wait is drawn: a call that succeeds at once never
/// asks (the host's crypto need not start for it); a 503 asks once, for its backoff.
#[test]
fn a_random_number_is_drawn_only_for_a_wait() {
    let c = cfg();
    let mut shared = Shared::new(&c);
    let asked = core::cell::Cell::new(0);
    let rand = || {
        asked.set(asked.get() + 1);
        0.5
    };
    let ok = Observation::Response { status: 200, headers: Headers::default(), body: None };
    let mut s = Session::new(&c, vec![Route::new("p", 3)], false);
    assert!(matches!(s.next(&mut shared, None, 0, rand), Decision::Attempt { .. }));
    assert_eq!(s.next(&mut shared, Some(&ok), 5, rand), Decision::Done(Outcome::Success));
    assert_eq!(asked.get(), 0, "a success draws nothing");
    let busy = Observation::Response { status: 503, headers: Headers::default(), body: None };
    let mut s = Session::new(&c, vec![Route::new("p", 3)], false);
    s.next(&mut shared, None, 10, rand);
    assert!(matches!(s.next(&mut shared, Some(&busy), 15, rand), Decision::Wait { cause: WaitCause::Backoff, .. }));
    assert_eq!(asked.get(), 1, "a backoff draws once");
}

/// A wait of 0 — a backoff of 0, `Retry-After: 0` — is no wait: the failed attempt's verdict is
/// the next send itself (its `Wait` event of 0 still told), so the host sets no timer of 0.
#[test]
fn a_wait_of_0_is_the_next_send_at_once() {
    let mut c = cfg();
    (c.backoff.initial_ms, c.backoff.max_ms) = (0, 0);
    let hinted: &[(&str, &str)] = &[("retry-after", "0")];
    for (cfg, headers) in [(&c, &[][..]), (&cfg(), hinted)] {
        let mut shared = Shared::new(cfg);
        let mut s = Session::new(cfg, vec![Route::new("p", 3)], false);
        assert!(matches!(s.next(&mut shared, None, 10, 0.5), Decision::Attempt { attempt: 1, .. }));
        let busy = Observation::Response { status: 503, headers: headers.iter().copied().collect(), body: None };
        assert!(
            matches!(s.next(&mut shared, Some(&busy), 15, 0.5), Decision::Attempt { route: 0, attempt: 2, .. }),
            "{headers:?}: the retry is decided at once"
        );
        let mut waits = vec![];
        while let Some(e) = s.poll_event() {
            if let Event::Wait { delay_ms, cause, .. } = e {
                waits.push((delay_ms, cause));
            }
        }
        assert_eq!(waits.len(), 1, "{headers:?}: one wait told");
        assert_eq!(waits[0].0, 0);
    }
}

/// A session whose events nobody reads (no `onEvent`) keeps none, and decides the same: the same
/// requests at the same times, the same waits and outcome — breaker, fallback and hints included.
#[test]
fn a_session_without_events_decides_the_same() {
    let c = Config {
        breaker: Some(BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() }),
        ..Config::default()
    };
    let script = &[
        Status(503, &[], None),
        Status(429, &[("retry-after", "1")], None),
        Network,
        Timeout(100),
        Status(503, &[], None),
        Status(200, &[], None),
    ];
    let session = || Session::new(&c, vec![Route::new("p", c.max_attempts), Route::new("q", c.max_attempts)], true);
    let told = play(session(), &mut Shared::new(&c), script, 0, 0.5);
    let mut quiet = session();
    quiet.keep_no_events();
    let quiet = play(quiet, &mut Shared::new(&c), script, 0, 0.5);
    assert!(told.events.iter().any(|e| matches!(e, Event::Breaker { .. })), "{:?}", told.events);
    assert!(told.events.iter().any(|e| matches!(e, Event::Fallback { .. })), "{:?}", told.events);
    assert!(quiet.events.is_empty(), "{:?}", quiet.events);
    assert_eq!(told.outcome, quiet.outcome);
    assert_eq!(told.sent, quiet.sent);
    assert_eq!(told.waits, quiet.waits);
    assert!(told.sent.len() >= 3, "{:?}", told.sent);
}

#[test]
fn server_errors_back_off_with_growing_waits() {
    let mut c = cfg();
    c.backoff.jitter = Jitter::None;
    let r = run(
        &c,
        &mut Shared::new(&c),
        &["p"],
        false,
        &[Status(503, &[], None), Status(503, &[], None), Status(200, &[], None)],
        0,
        0.5,
    );
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.waits.iter().map(|w| w.0).collect::<Vec<_>>(), [1000, 2000]);
    let g = gaps(&r);
    assert!(g[1] > g[0]);
}

#[test]
fn callers_errors_are_not_retried() {
    for status in [400, 401, 403, 404, 413, 422] {
        let r = once(&[Status(status, &[], None)]);
        assert_eq!(r.sent.len(), 1, "status {status}");
    }
    assert_eq!(once(&[Status(400, &[], None)]).outcome, Outcome::Returned(Reason::ClientError));
    assert_eq!(once(&[Status(401, &[], None)]).outcome, Outcome::Exhausted(Reason::Unauthorized));
}

#[test]
fn exhausted_quota_is_not_retried() {
    let r = once(&[Status(429, &[], Some(QUOTA))]);
    assert_eq!(r.sent.len(), 1);
    assert_eq!(r.outcome, Outcome::Exhausted(Reason::InsufficientQuota));
}

#[test]
fn timeouts_are_retried_only_when_idempotent() {
    let c = Config { attempt_timeout_ms: Some(10_000), ..cfg() };
    let post = run(&c, &mut Shared::new(&c), &["p"], false, &[Timeout(10_000), Status(200, &[], None)], 0, 0.5);
    assert_eq!(post.sent.len(), 1);
    assert_eq!(post.outcome, Outcome::Returned(Reason::TimeoutNotIdempotent));
    let get = run(&c, &mut Shared::new(&c), &["p"], true, &[Timeout(10_000), Status(200, &[], None)], 0, 0.5);
    assert_eq!(get.sent.len(), 2);
    assert_eq!(get.outcome, Outcome::Success);
}

#[test]
fn a_long_hint_stops_at_once() {
    let r = once(&[Status(429, &[("retry-after", "120")], None)]);
    assert_eq!(r.sent.len(), 1);
    assert!(r.waits.is_empty());
    assert_eq!(r.outcome, Outcome::Exhausted(Reason::HintTooLong));
}

#[test]
fn attempts_are_counted_and_network_errors_retried() {
    let r = once(&[Network, Network, Network, Network, Status(200, &[], None)]);
    assert_eq!(r.sent.len(), 4);
    assert_eq!(r.outcome, Outcome::Exhausted(Reason::AttemptsExhausted));
}

#[test]
fn no_sleep_overruns_the_deadline() {
    let mut c = cfg();
    c.deadline_ms = 2500;
    c.backoff.jitter = Jitter::None;
    let r = run(&c, &mut Shared::new(&c), &["p"], false, &[Status(503, &[], None); 4], 0, 0.5);
    // 1000 ms wait fits, the 2000 ms one would end past 2500: never started.
    assert_eq!(r.waits.len(), 1);
    assert_eq!(r.sent.len(), 2);
    assert_eq!(r.outcome, Outcome::Exhausted(Reason::Deadline));
}

#[test]
fn the_deadline_bounds_a_hanging_attempt() {
    let mut c = cfg();
    c.deadline_ms = 3000;
    for idempotent in [true, false] {
        let r = run(&c, &mut Shared::new(&c), &["p", "fallback"], idempotent, &[Timeout(u64::MAX)], 0, 0.5);
        assert_eq!(r.outcome, Outcome::Exhausted(Reason::Deadline), "idempotent: {idempotent}");
        assert_eq!(r.sent.len(), 1, "nothing is sent after the deadline");
    }
}

#[test]
fn a_timeout_before_the_deadline_is_the_attempts_own() {
    // retry(fn): an SDK's own timeout error, thrown long before the call's deadline, is an attempt
    // timeout (retried only when idempotent), not the deadline.
    let c = cfg();
    let script = [Timeout(50), Status(200, &[], None)];
    let r = run(&c, &mut Shared::new(&c), &["p"], true, &script, 0, 0.5);
    assert_eq!((r.outcome, r.sent.len()), (Outcome::Success, 2));
    let r = run(&c, &mut Shared::new(&c), &["p"], false, &script, 0, 0.5);
    assert_eq!((r.outcome, r.sent.len()), (Outcome::Returned(Reason::TimeoutNotIdempotent), 1));
}

/// Every request sent is announced by an `Attempt` event, the last before it leaves: numbered
/// from 1 across routes, on the route it goes to, after the `Retry` or `Fallback` that explains it.
#[test]
fn each_request_is_announced_by_an_attempt_event() {
    let c = Config { max_attempts: 2, ..cfg() };
    let script = [Status(503, &[], None), Status(503, &[], None), Status(200, &[], None)];
    let r = run(&c, &mut Shared::new(&c), &["a", "b"], false, &script, 0, 0.5);
    assert_eq!(r.outcome, Outcome::Success);
    let attempts: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Attempt { attempt, route } => Some((*attempt, *route)),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [(1, 0), (2, 0), (3, 1)]);
    let kinds: Vec<_> = r
        .events
        .iter()
        .filter(|e| !matches!(e, Event::Wait { .. } | Event::Breaker { .. }))
        .map(|e| match e {
            Event::Attempt { .. } => "attempt",
            Event::Retry { .. } => "retry",
            Event::Fallback { .. } => "fallback",
            Event::Success { .. } => "success",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["attempt", "retry", "attempt", "fallback", "attempt", "success"]);
}

#[test]
fn fallback_after_exhaustion_and_at_once_on_quota() {
    let c = Config { max_attempts: 3, ..cfg() };
    let r = run(
        &c,
        &mut Shared::new(&c),
        &["a", "b"],
        false,
        &[Status(503, &[], None), Status(503, &[], None), Status(503, &[], None), Status(200, &[], None)],
        0,
        0.5,
    );
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 0, 0, 1]);
    assert!(r.events.contains(&Event::Fallback {
        from: 0,
        to: 1,
        reason: Reason::AttemptsExhausted,
        status: Some(503)
    }));
    assert!(r.events.iter().any(|e| matches!(e, Event::Success { route: 1, fallback: true, .. })));

    let q = run(
        &c,
        &mut Shared::new(&c),
        &["a", "b"],
        false,
        &[Status(429, &[], Some(QUOTA)), Status(200, &[], None)],
        0,
        0.5,
    );
    assert_eq!(q.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
    // The caller's own error never moves on.
    let own = run(&c, &mut Shared::new(&c), &["a", "b"], false, &[Status(422, &[], None)], 0, 0.5);
    assert_eq!(own.sent.len(), 1);
}

#[test]
fn breaker_opens_skips_then_probes_once() {
    let c = one_attempt_breaker(5, 10_000);
    let mut shared = Shared::new(&c);
    for i in 0..5 {
        let r = run(&c, &mut shared, &["a", "b"], false, &[Status(503, &[], None), Status(200, &[], None)], i, 0.5);
        assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
    }
    // Open: the primary is skipped without a request until the cooldown has passed.
    let r = run(&c, &mut shared, &["a", "b"], false, &[Status(200, &[], None)], 5000, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [1]);
    // After the cooldown exactly one probe goes to the primary; it succeeds and closes.
    // (The fifth failure was recorded at t = 9 ms: open until 10 009.)
    let r = run(&c, &mut shared, &["a", "b"], false, &[Status(200, &[], None)], 10_008, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [1]);
    let r = run(&c, &mut shared, &["a", "b"], false, &[Status(200, &[], None)], 10_009, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0]);
    assert!(r.events.iter().any(|e| matches!(e, Event::Breaker { to: llm_retry::policy::breaker::State::Closed, .. })));
}

/// Two instances sharing health through a store (a map of records, merged by `Record::join`):
/// the one that meets the outage opens its breaker and tells; the other adopts it and skips the
/// route without a request; the first one's successful probe closes both.
#[test]
fn instances_sharing_health_skip_a_route_another_found_down() {
    use llm_retry::policy::health::Record;
    use std::collections::HashMap;
    let c = one_attempt_breaker(3, 1_000);
    let (mut a, mut b) = (Shared::new(&c), Shared::new(&c));
    let mut store: HashMap<String, Record> = HashMap::new();
    let tell = |from: &mut Shared, store: &mut HashMap<String, Record>| {
        for (key, record) in from.changed() {
            let merged = store.get(&key).copied().unwrap_or_default().join(record);
            store.insert(key, merged);
        }
    };
    // b has seen the route healthy: its breaker exists, closed.
    run(&c, &mut b, &["a", "b"], false, &[Status(200, &[], None)], 0, 0.5);
    tell(&mut b, &mut store);
    assert!(store.is_empty(), "nothing to tell about a healthy route");
    for t in 0..3 {
        run(&c, &mut a, &["a", "b"], false, &[Status(503, &[], None), Status(200, &[], None)], 100 + t, 0.5);
    }
    tell(&mut a, &mut store);
    let told = store["a"];
    assert_eq!((told.opened_at, told.open_until), (107, 1107), "the third failure, observed at 107");
    b.take_woken();
    b.adopt("a", told, 200);
    assert!(b.take_woken().is_empty(), "an opening wakes nobody");
    let r = run(&c, &mut b, &["a", "b"], false, &[Status(200, &[], None)], 200, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [1], "b skipped the route a found down");
    tell(&mut b, &mut store);
    assert_eq!(store["a"], told, "b echoes nothing back");
    // a's probe after the cooldown succeeds and closes its breaker; b adopts the closing at once.
    let r = run(&c, &mut a, &["a", "b"], false, &[Status(200, &[], None)], 1107, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0]);
    tell(&mut a, &mut store);
    assert_eq!(store["a"].closed_at, 1112, "the probe's 200, observed at 1112");
    b.take_woken();
    b.adopt("a", store["a"], 1113);
    assert_eq!(
        b.take_woken().iter().map(|k| &**k).collect::<Vec<_>>(),
        ["a"],
        "a closing wakes the calls waiting for the route"
    );
    let r = run(&c, &mut b, &["a", "b"], false, &[Status(200, &[], None)], 1113, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0], "b sends to the route again");
    // A stale record (the old opening) merged again changes nothing: no lost update, no flapping.
    b.adopt("a", told, 1120);
    assert!(b.take_woken().is_empty());
    let r = run(&c, &mut b, &["a", "b"], false, &[Status(200, &[], None)], 1120, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0]);
}

/// A route cooling for longer than maxRetryAfterMs is not waited for: a call that finds every
/// route so held sends nothing and says when the soonest admits again, rather than claiming a
/// deadline it never reached.
#[test]
fn a_cooling_too_long_to_wait_for_fails_fast_naming_it() {
    let c = Config { breaker: Some(BreakerConfig::default()), ..cfg() };
    let mut shared = Shared::new(&c);
    let r = run(&c, &mut shared, &["a"], false, &[Status(429, &[("retry-after", "120")], None)], 0, 0.5);
    assert_eq!((r.outcome, r.sent.len()), (Outcome::Exhausted(Reason::HintTooLong), 1));
    let r = run(&c, &mut shared, &["a"], false, &[], 1_000, 0.5);
    assert!(r.sent.is_empty());
    assert_eq!(r.outcome, Outcome::CircuitOpen { retry_in_ms: 119_005, reason: Reason::Cooling });
}

#[test]
fn every_route_open_past_the_deadline_sends_nothing() {
    let breaker = BreakerConfig { failure_threshold: 1, cooldown_ms: 10_000, max_cooldown_ms: 10_000 };
    let c = Config { max_attempts: 1, deadline_ms: 6_000, breaker: Some(breaker), ..cfg() };
    let mut shared = Shared::new(&c);
    run(&c, &mut shared, &["a", "b"], false, &[Status(503, &[], None), Status(503, &[], None)], 0, 0.5);
    let r = run(&c, &mut shared, &["a", "b"], false, &[], 4000, 0.5);
    assert!(r.sent.is_empty());
    assert_eq!(r.outcome, Outcome::CircuitOpen { retry_in_ms: 6005, reason: Reason::CircuitOpen });
    assert!(
        r.events.contains(&Event::Skip { route: 0, retry_in_ms: 6005, cause: WaitCause::Breaker }),
        "{:?}",
        r.events
    );
}

#[test]
fn every_route_open_within_the_deadline_waits_in_line() {
    let breaker = BreakerConfig { failure_threshold: 1, cooldown_ms: 10_000, max_cooldown_ms: 10_000 };
    let c = Config { max_attempts: 1, breaker: Some(breaker), ..cfg() };
    let mut shared = Shared::new(&c);
    run(&c, &mut shared, &["a", "b"], false, &[Status(503, &[], None), Status(503, &[], None)], 0, 0.5);
    let r = run(&c, &mut shared, &["a", "b"], false, &[Status(200, &[], None)], 4000, 0.5);
    assert_eq!(r.outcome, Outcome::Success);
    // The soonest route is b (opened 5 ms after a): the probe goes to a at 10 005.
    assert_eq!(r.sent, [(0, 10_005)]);
    assert_eq!(r.waits, [(6005, WaitCause::Breaker)]);
}

#[test]
fn a_429_hint_cools_the_route_for_other_calls() {
    let c = Config { max_attempts: 1, ..Config::default() };
    let mut shared = Shared::new(&c);
    run(
        &c,
        &mut shared,
        &["a", "b"],
        false,
        &[Status(429, &[("retry-after", "10")], None), Status(200, &[], None)],
        0,
        0.5,
    );
    let r = run(&c, &mut shared, &["a", "b"], false, &[Status(200, &[], None)], 5000, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [1]);
    let r = run(&c, &mut shared, &["a", "b"], false, &[Status(200, &[], None)], 10_006, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0]);
}

#[test]
fn the_budget_stops_retries_during_an_outage() {
    let budget = Some(llm_retry::policy::budget::BudgetConfig { max_tokens: 10.0, token_ratio: 0.1 });
    let c = Config { breaker: None, budget, ..Config::default() };
    let mut shared = Shared::new(&c);
    let mut sent = 0;
    for i in 0..10 {
        sent += run(&c, &mut shared, &["a"], false, &[Status(503, &[], None); 4], i * 100_000, 0.5).sent.len();
    }
    // Without a budget: 40 requests. With it, retries stop once half the tokens are spent.
    assert!(sent < 20, "sent {sent}");
    assert!(sent >= 10);
}

#[test]
fn the_failure_that_opens_the_breaker_moves_on_without_waiting() {
    let c = Config {
        breaker: Some(BreakerConfig { failure_threshold: 1, cooldown_ms: 10_000, max_cooldown_ms: 10_000 }),
        ..cfg()
    };
    let mut shared = Shared::new(&c);
    let r = run(&c, &mut shared, &["a", "b"], false, &[Status(503, &[], None), Status(200, &[], None)], 0, 0.5);
    assert_eq!(r.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
    assert!(r.waits.is_empty(), "no wait before the fallback: {:?}", r.waits);
    assert!(r.events.contains(&Event::Fallback { from: 0, to: 1, reason: Reason::CircuitOpen, status: Some(503) }));
    // The next call skips the open route, and says so.
    let r2 = run(&c, &mut shared, &["a", "b"], false, &[Status(200, &[], None)], 100, 0.5);
    assert_eq!(r2.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [1]);
    assert!(
        r2.events.contains(&Event::Skip { route: 0, retry_in_ms: 9905, cause: WaitCause::Breaker }),
        "{:?}",
        r2.events
    );
}

#[test]
fn rate_limits_do_not_open_the_breaker() {
    let breaker = BreakerConfig { failure_threshold: 2, cooldown_ms: 30_000, max_cooldown_ms: 30_000 };
    let c = Config { max_attempts: 1, deadline_ms: 10_000, breaker: Some(breaker), ..cfg() };
    let mut shared = Shared::new(&c);
    for i in 0..5 {
        run(&c, &mut shared, &["a"], false, &[Status(429, &[], None)], i * 10, 0.5);
    }
    let r = run(&c, &mut shared, &["a"], false, &[Status(200, &[], None)], 100, 0.5);
    assert_eq!(r.outcome, Outcome::Success, "still closed after five 429s");
    // An exhausted quota is the route's failure, and does count.
    for i in 0..2 {
        run(&c, &mut shared, &["a"], false, &[Status(429, &[], Some(QUOTA))], 200 + i, 0.5);
    }
    let r = run(&c, &mut shared, &["a"], false, &[], 300, 0.5);
    assert!(matches!(r.outcome, Outcome::CircuitOpen { .. }));
}

#[test]
fn a_call_woken_before_its_pacing_slot_keeps_it() {
    let c = Config::default();
    let mut shared = Shared::new(&c);
    let limits: &[(&str, &str)] = &[
        ("x-ratelimit-limit-requests", "10"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "100ms"),
    ];
    run(&c, &mut shared, &["p"], false, &[Status(200, limits, None)], 0, 0.5);
    // Two calls queue for slots; the first is woken 1 ms before its slot, as a host timer may.
    let mut a = Session::new(&c, vec![Route::new("p", 4)], false);
    let mut b = Session::new(&c, vec![Route::new("p", 4)], false);
    let Decision::Wait { ms: wa, cause: WaitCause::Pacing } = a.next(&mut shared, None, 5, 0.5) else { panic!() };
    let Decision::Wait { ms: wb, cause: WaitCause::Pacing } = b.next(&mut shared, None, 5, 0.5) else { panic!() };
    assert!(wb > wa);
    assert_eq!(a.next(&mut shared, None, 5 + wa - 1, 0.5), Decision::Wait { ms: 1, cause: WaitCause::Pacing });
    assert!(matches!(a.next(&mut shared, None, 5 + wa, 0.5), Decision::Attempt { .. }), "sent at its own slot");
}

/// Without rate-limit headers, a 429 paces the route at the rate the provider answered it: every
/// answer its limit let through counts (a 503 as a 200), over the time it has been answering.
#[test]
fn a_429_after_503s_paces_at_the_rate_every_answer_came() {
    let c = Config { max_attempts: 1, ..cfg() };
    let mut shared = Shared::new(&c);
    // A call every 5 ms, half answered 503, then five 429s without a hint 200 ms on (a tenth of
    // the answers: a limit, not strays): 40 answers in its first second.
    let t = 1_000_000;
    for i in 0..40 {
        let status = if i % 2 == 0 { 200 } else { 503 };
        run(&c, &mut shared, &["p"], false, &[Status(status, &[], None)], t + i * 5, 0.5);
    }
    for _ in 0..5 {
        run(&c, &mut shared, &["p"], false, &[Status(429, &[], None)], t + 200, 0.5);
    }
    let slots: Vec<u64> = (0..3)
        .map(|_| match Session::new(&c, vec![Route::new("p", 1)], false).next(&mut shared, None, t + 210, 0.5) {
            Decision::Attempt { .. } => 0,
            Decision::Wait { ms, cause: WaitCause::Pacing } => ms,
            d => panic!("{d:?}"),
        })
        .collect();
    // 25 ms apart (counting the 200s alone: 50 ms apart).
    assert_eq!((slots[1] - slots[0], slots[2] - slots[1]), (25, 25), "{slots:?}");
}

/// A rate learned from 429s: a call far back in line sleeps at most half a second at a time and
/// asks again (its place moves with the rate), saying its wait once; a 429 whose hint pauses the
/// route teaches the rate however rare it is.
#[test]
fn a_call_in_line_for_a_rate_from_429s_asks_again_and_says_its_wait_once() {
    let c = Config { max_attempts: 1, ..Config::default() };
    let mut shared = Shared::new(&c);
    let t = 1_000_000;
    for i in 0..20 {
        run(&c, &mut shared, &["p"], false, &[Status(200, &[], None)], t + i * 50, 0.5);
    }
    // One 429 in 21 answers, but its hint pauses the route for 100 ms: the rate is 20 a second.
    run(&c, &mut shared, &["p"], false, &[Status(429, &[("retry-after-ms", "100")], None)], t + 1_000, 0.5);
    let mut line: Vec<Session> = (0..16).map(|_| Session::new(&c, vec![Route::new("p", 1)], false)).collect();
    let mut said = vec![];
    let slept: Vec<u64> = line
        .iter_mut()
        .map(|s| {
            let d = s.next(&mut shared, None, t + 1_200, 0.5);
            while let Some(e) = s.poll_event() {
                if let Event::Wait { delay_ms, .. } = e {
                    said.push(delay_ms);
                }
            }
            match d {
                Decision::Attempt { .. } => 0,
                Decision::Wait { ms, cause: WaitCause::Pacing } => ms,
                d => panic!("{d:?}"),
            }
        })
        .collect();
    assert_eq!(said.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>(), [50; 14], "{said:?}");
    assert_eq!(slept[15], 500, "the last sleeps half a second, not {}", said[14]);
    // Half a second on it asks again: still in line, nothing said.
    let last = &mut line[15];
    assert!(matches!(last.next(&mut shared, None, t + 1_700, 0.5), Decision::Wait { cause: WaitCause::Pacing, .. }));
    assert!(last.poll_event().is_none());
}

#[test]
fn the_default_deadline_never_cuts_an_attempt_in_flight() {
    // Defaults: no timer on the attempt (the SDK's own timeout bounds a slow answer); the time
    // left is passed for a stream's wait for its first token.
    let c = Config::default();
    let mut s = Session::new(&c, vec![Route::new("p", 4)], false);
    let d = s.next(&mut Shared::new(&c), None, 1_000, 0.5);
    assert_eq!(d, Decision::Attempt { route: 0, attempt: 1, timeout_ms: None, deadline_ms: 60_000, limits: true });
    // A deadline the user set bounds the attempt too.
    let c = Config { deadline_ms: 5_000, deadline_cuts_attempts: true, ..Config::default() };
    let mut s = Session::new(&c, vec![Route::new("p", 4)], false);
    let d = s.next(&mut Shared::new(&c), None, 1_000, 0.5);
    assert_eq!(
        d,
        Decision::Attempt { route: 0, attempt: 1, timeout_ms: Some(5_000), deadline_ms: 5_000, limits: true }
    );
}

/// A provider's request limit of 20 with 19 left (idle) and with 2 left (busy: over half used).
const QUIET: &[(&str, &str)] = &[
    ("x-ratelimit-limit-requests", "20"),
    ("x-ratelimit-remaining-requests", "19"),
    ("x-ratelimit-reset-requests", "100ms"),
];
const BUSY: &[(&str, &str)] = &[
    ("x-ratelimit-limit-requests", "20"),
    ("x-ratelimit-remaining-requests", "2"),
    ("x-ratelimit-reset-requests", "100ms"),
];

/// Shared pacing: a busy route asks the shared bucket before it sends, and sends at the slot it
/// was given; a bucket that cannot answer leaves the slot to the route's own pacer; a slot past
/// the deadline is not waited for. An idle route asks nothing.
#[test]
fn a_busy_route_sends_at_the_slot_the_shared_bucket_gives() {
    let c = Config { deadline_ms: 1_000, ..Config::default() };
    let mut shared = Shared::new(&c);
    shared.share_pacing();
    // 19 of 20 left: not busy; the call sends at once without asking.
    run(&c, &mut shared, &["p"], false, &[Status(200, QUIET, None)], 0, 0.5);
    let r = run(&c, &mut shared, &["p"], false, &[Status(200, &[], None)], 10, 0.5);
    assert_eq!(r.sent, [(0, 10)]);
    // 2 left: busy. A call asks, with the rate and count its pacer learned.
    run(&c, &mut shared, &["p"], false, &[Status(200, BUSY, None)], 20, 0.5);
    let mut s = Session::new(&c, vec![Route::new("p", 4)], false);
    let Decision::Slot { route: 0, ask, .. } = s.next(&mut shared, None, 30, 0.5) else { panic!("no ask") };
    assert!((ask.burst, ask.interval > 5.0, ask.tat > 30.0) == (20.0, true, true), "{ask:?}");
    // Given a slot 40 ms on: it waits for it, then sends, without asking again.
    s.grant(Some(70));
    assert_eq!(s.next(&mut shared, None, 30, 0.5), Decision::Wait { ms: 40, cause: WaitCause::Pacing });
    assert!(matches!(s.next(&mut shared, None, 70, 0.5), Decision::Attempt { route: 0, .. }));
    // No answer: the route's own pacer gives the slot (after the one just granted).
    let mut s = Session::new(&c, vec![Route::new("p", 4)], false);
    assert!(matches!(s.next(&mut shared, None, 71, 0.5), Decision::Slot { .. }));
    s.grant(None);
    let Decision::Wait { ms, cause: WaitCause::Pacing } = s.next(&mut shared, None, 71, 0.5) else { panic!() };
    assert!(
        matches!(s.next(&mut shared, None, 71 + ms, 0.5), Decision::Attempt { .. }),
        "at that slot, asking nothing more"
    );
    // A slot past the deadline: nothing is sent, and the call says pacing held it.
    let mut s = Session::new(&c, vec![Route::new("p", 4)], false);
    assert!(matches!(s.next(&mut shared, None, 80, 0.5), Decision::Slot { .. }));
    s.grant(Some(5_000));
    assert!(matches!(
        s.next(&mut shared, None, 80, 0.5),
        Decision::Done(Outcome::CircuitOpen { reason: Reason::Pacing, .. })
    ));
}

/// With a fallback ready, a busy primary is asked for a slot now or not at all: a later slot is
/// not taken (the bucket keeps it for a call that waits), and the call goes to the fallback.
#[test]
fn a_busy_route_with_a_ready_fallback_asks_for_a_slot_now_or_not_at_all() {
    let c = Config::default();
    let mut shared = Shared::new(&c);
    shared.share_pacing();
    run(&c, &mut shared, &["p"], false, &[Status(200, BUSY, None)], 0, 0.5);
    let mut s = Session::new(&c, vec![Route::new("p", 4), Route::new("backup", 4)], false);
    let Decision::Slot { route: 0, ask, .. } = s.next(&mut shared, None, 10, 0.5) else { panic!("no ask") };
    assert_eq!(ask.within, Some(0));
    s.grant(Some(60)); // the bucket's next slot: not taken
    assert!(matches!(s.next(&mut shared, None, 10, 0.5), Decision::Attempt { route: 1, .. }), "the fallback, at once");
    // A slot now is taken and used.
    let mut s = Session::new(&c, vec![Route::new("p", 4), Route::new("backup", 4)], false);
    assert!(matches!(s.next(&mut shared, None, 20, 0.5), Decision::Slot { route: 0, .. }));
    s.grant(Some(20));
    assert!(matches!(s.next(&mut shared, None, 20, 0.5), Decision::Attempt { route: 0, .. }));
}

/// Whether a success's rate-limit headers are asked for: always while the route's provider sends
/// them, and for a route whose last 64 responses had none, on one response in 8 (a provider that
/// starts sending them is read within 8); never with pacing off.
#[test]
fn a_route_without_rate_limit_headers_is_asked_for_them_on_one_response_in_eight() {
    let asked = |c: &Config, shared: &mut Shared, headers: &'static [(&'static str, &'static str)], now| {
        let mut s = Session::new(c, vec![Route::new("p", 4)], false);
        let Decision::Attempt { limits, .. } = s.next(shared, None, now, 0.5) else { panic!("no attempt") };
        let seen: Headers = if limits { headers.iter().copied().collect() } else { Headers::new() };
        let obs = Observation::Response { status: 200, headers: seen, body: None };
        assert_eq!(s.next(shared, Some(&obs), now, 0.5), Decision::Done(Outcome::Success));
        limits
    };
    let c = Config::default();
    let mut shared = Shared::new(&c);
    let first: Vec<bool> = (0..64).map(|i| asked(&c, &mut shared, &[], i)).collect();
    assert!(first.iter().all(|&a| a), "the first 64 responses are all read");
    let then: Vec<bool> = (64..88).map(|i| asked(&c, &mut shared, &[], i)).collect();
    assert_eq!(then.iter().filter(|&&a| a).count(), 3, "{then:?}");
    assert!(then[0] && then[8] && then[16], "{then:?}");
    // The provider starts sending them: read on the first response asked, and every one after.
    let from: Vec<bool> = (88..100).map(|i| asked(&c, &mut shared, QUIET, i)).collect();
    let learned = from.iter().position(|&a| a).expect("asked again");
    assert!(learned < 8 && from[learned..].iter().all(|&a| a), "{from:?}");
    // Pacing off: nothing would read them.
    let c = Config { pacing: false, ..Config::default() };
    let mut shared = Shared::new(&c);
    assert!((0..5).all(|i| !asked(&c, &mut shared, QUIET, i)));
}

/// A provider whose limit has room to spare by the pacer's count (at least 64 requests and half
/// the limit) has its headers read on one response in 8; once a read shows less than half left,
/// or a 429 comes, every one until the bucket has refilled.
#[test]
fn a_provider_far_from_its_limit_is_read_on_one_response_in_eight() {
    // 10,000 a minute, 9,000 left, whole again in a minute's tenth: a 6 ms interval, far from busy.
    const PLENTY: &[(&str, &str)] = &[
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "9000"),
        ("x-ratelimit-reset-requests", "6s"),
    ];
    const HALF_USED: &[(&str, &str)] = &[
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "4000"),
        ("x-ratelimit-reset-requests", "36s"),
    ];
    let call = |c: &Config, shared: &mut Shared, status: u16, headers: &[(&'static str, &'static str)], now| {
        let mut s = Session::new(c, vec![Route::new("p", 1)], false);
        let Decision::Attempt { limits, .. } = s.next(shared, None, now, 0.5) else { panic!("no attempt at {now}") };
        let seen: Headers = if limits || status == 429 { headers.iter().copied().collect() } else { Headers::new() };
        s.next(shared, Some(&Observation::Response { status, headers: seen, body: None }), now, 0.5);
        limits
    };
    let asked_at =
        |from: u64, v: Vec<bool>| -> Vec<u64> { (from..).zip(v).filter(|&(_, a)| a).map(|(i, _)| i).collect() };
    let c = Config::default();
    let mut shared = Shared::new(&c);
    // Sends 10 ms apart: slower than the rate, so the route's own sends never make it busy.
    let plenty: Vec<bool> = (0..24).map(|i| call(&c, &mut shared, 200, PLENTY, i * 10)).collect();
    assert_eq!(asked_at(0, plenty), [0, 8, 16], "the first, then one in 8");
    // The next read shows more than half used: every response from there.
    let half: Vec<bool> = (24..40).map(|i| call(&c, &mut shared, 200, HALF_USED, i * 10)).collect();
    assert_eq!(asked_at(24, half), (24..40).collect::<Vec<_>>(), "read at its turn, then every one");
    // A minute on, the bucket has refilled at the rate the pacer learned: sampled again, one in 8
    // counted from the last response read. (Before then this route's own count still has it over
    // half used, and every response is read.)
    let again: Vec<bool> = (40..64).map(|i| call(&c, &mut shared, 200, PLENTY, 60_000 + i * 10)).collect();
    assert_eq!(asked_at(40, again), [47, 55, 63]);
    // A 429 (read whole) counts the bucket spent: every response after it is read, whatever the
    // provider's next counts say, until the bucket has refilled.
    call(&c, &mut shared, 429, &[], 60_640);
    let after: Vec<bool> = (65..75).map(|i| call(&c, &mut shared, 200, PLENTY, 60_000 + i * 10)).collect();
    assert_eq!(asked_at(65, after), (65..75).collect::<Vec<_>>());
    // Plenty by the provider's count, but this route's own sends (1 ms apart, against a rate of
    // one every ~300 ms) fill half the bucket within ~50: from there every response is read.
    const SMALL: &[(&str, &str)] = &[
        ("x-ratelimit-limit-requests", "200"),
        ("x-ratelimit-remaining-requests", "150"),
        ("x-ratelimit-reset-requests", "15s"),
    ];
    let mut shared = Shared::new(&c);
    let fast: Vec<bool> = (0..64).map(|i| call(&c, &mut shared, 200, SMALL, i)).collect();
    let read = asked_at(0, fast);
    assert_eq!(read[..4], [0, 8, 16, 24], "{read:?}");
    assert!(read.ends_with(&(56..64).collect::<Vec<_>>()), "{read:?}");
}

/// A client with many routes (a gateway passing its users' models on makes one a model) keeps
/// each one's breaker apart: past 16 routes they are found through an index by the keys' hash,
/// built anew as it fills and when the host seeds the hash (here, half-way). Every third route
/// fails once and opens; a later call is refused on exactly those, and sent on the rest; the
/// store is told of each opening once.
#[test]
fn a_thousand_routes_keep_their_own_breakers() {
    use llm_retry::policy::breaker::State;
    let c = one_attempt_breaker(1, 1_000_000);
    let mut shared = Shared::new(&c);
    let keys: Vec<String> = (0..1_000).map(|i| format!("https://api.example.com model-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        // The host is asked for a seed once there are as many routes as it searches in turn.
        assert_eq!(shared.needs_seed(), (16..=500).contains(&i), "route {i}");
        if i == 500 {
            shared.seed(0x9e37_79b9);
        }
        let status = if i % 3 == 0 { 503 } else { 200 };
        let r = run(&c, &mut shared, &[key.as_str()], false, &[Status(status, &[], None)], 10, 0.5);
        assert_eq!(r.sent.len(), 1, "{key}: its first call is sent");
    }
    let mut open: Vec<String> =
        shared.snapshot().filter(|(_, s)| s.state == State::Open).map(|(k, _)| k.to_string()).collect();
    open.sort();
    let mut expected: Vec<String> = keys.iter().step_by(3).cloned().collect();
    expected.sort();
    assert_eq!(open, expected);
    let mut told: Vec<String> = shared.changed().into_iter().map(|(k, _)| k).collect();
    told.sort();
    assert_eq!(told, expected, "each opening is told once");
    assert!(shared.changed().is_empty(), "and not again");
    for (i, key) in keys.iter().enumerate().rev() {
        let r = run(&c, &mut shared, &[key.as_str()], false, &[Status(200, &[], None)], 20, 0.5);
        assert_eq!(r.sent.len(), usize::from(i % 3 != 0), "{key}: refused only when its own breaker is open");
    }
    assert_eq!(shared.snapshot().count(), 1_000, "one breaker a route, none made twice");
}

/// A gateway passing its users' models on makes a route each, and a model named once is never
/// named again: past a few thousand routes those at rest are dropped, so the routes kept stay
/// bounded however many models the calls name, while every route with something to remember
/// keeps it — a breaker open, a server's pause in force — and a route dropped is made anew, as
/// new, when it is named again. A rate learned from the provider's headers is not kept past its
/// bucket's refilling: the next response's headers teach it again (a provider that sends them
/// sends them on every response, and keeping it kept every route a gateway ever named).
#[test]
fn routes_at_rest_are_dropped_and_the_rest_remembered() {
    use llm_retry::policy::breaker::State;
    let c = one_attempt_breaker(1, 50_000_000);
    let limits: &[(&str, &str)] = &[
        ("x-ratelimit-limit-requests", "4"),
        ("x-ratelimit-remaining-requests", "2"),
        ("x-ratelimit-reset-requests", "1s"),
    ];
    let mut shared = Shared::new(&c);
    shared.seed(0x9e37_79b9);
    let key = |i: usize| format!("https://api.example.com model-{i}");
    // 0: answered 200; 1: a 503 opens its breaker; 2: a 429 asks for a pause of 50,000 s;
    // 3: a 200 whose rate-limit headers teach its pacer a rate.
    let kind = |i: usize| if i % 100 < 3 { i % 100 + 1 } else { 0 };
    let mut most = 0;
    for i in 0..20_000 {
        let script = match kind(i) {
            1 => Status(503, &[], None),
            2 => Status(429, &[("retry-after", "50000")], None),
            3 => Status(200, limits, None),
            _ => Status(200, &[], None),
        };
        let r = run(&c, &mut shared, &[key(i).as_str()], false, &[script], 10_000 + i as u64, 0.5);
        assert_eq!(r.sent.len(), 1, "{}: its first call is sent", key(i));
        most = most.max(shared.routes());
    }
    assert!(most <= 4_096 + 1, "at most {most} routes kept at once, of 20,000 named");
    // Later, calls on yet other models: when the routes next reach the bound, every one at rest
    // is dropped, and only those that remember are kept (and the one just named).
    let remembering = (0..20_000).filter(|&i| matches!(kind(i), 1 | 2)).count();
    let later = 100_000;
    let mut fewest = usize::MAX;
    for j in 0..6_000 {
        let other = format!("https://api.example.com other-{j}");
        run(&c, &mut shared, &[other.as_str()], false, &[Status(200, &[], None)], later + 1_000 * j, 0.5);
        fewest = fewest.min(shared.routes());
    }
    assert_eq!(fewest, remembering + 1, "the routes kept just after they were tidied");
    let later = later + 6_000_000;
    let open: Vec<String> = shared.snapshot().filter(|(_, s)| s.state == State::Open).map(|(k, _)| k.into()).collect();
    assert_eq!(open.len(), 200, "every opened breaker kept");
    for i in (0..20_000).step_by(7) {
        let r = run(&c, &mut shared, &[key(i).as_str()], false, &[Status(200, &[], None)], later + 10, 0.5);
        let refused = matches!(kind(i), 1 | 2);
        assert_eq!(r.sent.is_empty(), refused, "{}: kind {}", key(i), kind(i));
        if kind(i) == 3 {
            // Its bucket long full again, the rate was forgotten with the route: a new route's
            // pacer lets five sends at once go (the next response's headers would teach it again).
            let waited: Vec<bool> = (0..4)
                .map(|_| {
                    let r = run(&c, &mut shared, &[key(i).as_str()], false, &[Status(200, &[], None)], later + 10, 0.5);
                    r.waits.iter().any(|(_, cause)| *cause == WaitCause::Pacing)
                })
                .collect();
            assert!(!waited.contains(&true), "{}: paced {waited:?}", key(i));
        }
    }
}

/// A breaker that closes (its probe succeeded, or another instance told a closing) wakes the
/// calls waiting in line for that route, and the host is told which: the calls waiting for other
/// routes sleep on.
#[test]
fn a_closing_names_the_route_whose_waits_it_ends() {
    use llm_retry::policy::health::Record;
    let c = one_attempt_breaker(1, 100);
    let mut shared = Shared::new(&c);
    for k in ["a", "b"] {
        run(&c, &mut shared, &[k], false, &[Status(503, &[], None)], 1_000, 0.5);
    }
    let woken = |shared: &mut Shared| shared.take_woken().iter().map(|k| k.to_string()).collect::<Vec<_>>();
    assert!(woken(&mut shared).is_empty(), "an opening wakes no one");
    let r = run(&c, &mut shared, &["b"], false, &[Status(200, &[], None)], 1_200, 0.5);
    assert_eq!(r.sent.len(), 1, "b's probe");
    assert_eq!(woken(&mut shared), ["b"]);
    assert!(woken(&mut shared).is_empty(), "told once");
    shared.adopt("a", Record { closed_at: 1_300, ..Record::default() }, 1_300);
    assert_eq!(woken(&mut shared), ["a"], "a closing another instance told");
}
