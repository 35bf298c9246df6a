#![cfg(all(not(target_arch = "wasm32"), feature = "sim"))]
//! Many calls through one client under load and outages, with the default options, on a
//! simulated clock: the engine's decisions against a provider with a token-bucket rate limit
//! (OpenAI's rate-limit headers on every response, `Retry-After` on its 429s) and outage windows.
//! What is asserted is what the calls got and what the provider received — the storm benchmark's
//! targets (`make bench` measures the same over real sockets).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use llm_retry::policy::classify::Observation;
use llm_retry::policy::config::Config;
use llm_retry::policy::engine::{Decision, Outcome, Route, Session, Shared, WaitCause};
use llm_retry::policy::pacing;
use llm_retry::policy::Headers;

/// The mock provider: `rate` requests a second, `burst` at once; 503 during `outage`.
struct Provider {
    rate_per_ms: f64,
    burst: f64,
    tokens: f64,
    at: u64,
    outage: Option<(u64, u64)>,
    /// Send the rate-limit headers (else bare responses, and a bare Retry-After on 429s).
    headers: bool,
    /// Requests received: (time, status).
    log: Vec<(u64, u16)>,
}

impl Provider {
    fn new(rate_per_sec: f64, burst: f64) -> Self {
        let rate_per_ms = rate_per_sec / 1000.0;
        Self { rate_per_ms, burst, tokens: burst, at: 0, outage: None, headers: true, log: vec![] }
    }

    fn handle(&mut self, now: u64) -> Observation {
        self.tokens = (self.tokens + (now - self.at) as f64 * self.rate_per_ms).min(self.burst);
        self.at = now;
        if self.outage.is_some_and(|(from, to)| (from..to).contains(&now)) {
            self.log.push((now, 503));
            return Observation::Response { status: 503, headers: Headers::new(), body: None };
        }
        let status = if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            200
        } else {
            429
        };
        let mut headers = Headers::new();
        if self.headers {
            let reset = ((self.burst - self.tokens) / self.rate_per_ms).ceil() as u64;
            headers.push("x-ratelimit-limit-requests", (self.burst as u64).to_string());
            headers.push("x-ratelimit-remaining-requests", (self.tokens.floor() as u64).to_string());
            headers.push("x-ratelimit-reset-requests", format!("{reset}ms"));
        }
        if status == 429 {
            headers.push("retry-after", "1");
            headers.push("retry-after-ms", "1000");
        }
        self.log.push((now, status));
        Observation::Response { status, headers, body: None }
    }
}

struct Call {
    session: Session,
    seen: Option<Observation>,
    start: u64,
    end: Option<(u64, Outcome)>,
    /// The queue entry that is this call's next step (older ones are stale).
    token: u64,
    in_breaker_wait: bool,
}

/// Runs calls starting at `starts` (ms) to their ends through one client; the provider answers
/// after `latency_ms`.
fn storm(cfg: &Config, provider: &mut Provider, starts: &[u64], latency_ms: u64, rands: u64) -> Vec<Call> {
    fleet(cfg, provider, starts, latency_ms, rands, 1, None)
}

/// The same through `instances` clients (servers, isolates), each with its own state, the calls
/// dealt round-robin. `bucket_ms`: their pacing is shared through a bucket that answers in that
/// many ms (what the stores compute: `pacing::grant`); none: each paces alone.
fn fleet(
    cfg: &Config,
    provider: &mut Provider,
    starts: &[u64],
    latency_ms: u64,
    rands: u64,
    instances: usize,
    bucket_ms: Option<u64>,
) -> Vec<Call> {
    let mut shared: Vec<Shared> = (0..instances).map(|_| Shared::new(cfg)).collect();
    if bucket_ms.is_some() {
        shared.iter_mut().for_each(Shared::share_pacing);
    }
    let mut bucket_tat = 0.0;
    let mut calls: Vec<Call> = starts
        .iter()
        .map(|&start| Call {
            session: Session::new(cfg, vec![Route::new("provider", cfg.max_attempts)], false),
            seen: None,
            start,
            end: None,
            token: 0,
            in_breaker_wait: false,
        })
        .collect();
    let mut queue: BinaryHeap<Reverse<(u64, usize, u64)>> =
        calls.iter().enumerate().map(|(i, c)| Reverse((c.start, i, 0))).collect();
    let mut rng = rands | 1;
    while let Some(Reverse((now, i, token))) = queue.pop() {
        if calls[i].token != token {
            continue;
        }
        let k = i % instances;
        let c = &mut calls[i];
        c.in_breaker_wait = false;
        let d = c.session.next(&mut shared[k], c.seen.as_ref(), now, llm_retry::rng::next_f64(&mut rng));
        while c.session.poll_event().is_some() {}
        match d {
            Decision::Attempt { .. } => {
                c.seen = Some(provider.handle(now));
                queue.push(Reverse((now + latency_ms, i, c.token)));
            }
            Decision::Wait { ms, cause } => {
                c.in_breaker_wait = cause == WaitCause::Breaker;
                queue.push(Reverse((now + ms, i, c.token)));
            }
            Decision::Slot { ask, .. } => {
                // The store hands out the slot when the ask reaches it; the answer comes back.
                let store_ms = bucket_ms.unwrap_or(0);
                let (slots, tat) = pacing::grant(bucket_tat, &ask, 1, now + store_ms / 2);
                bucket_tat = tat;
                c.session.grant(slots.first().copied());
                queue.push(Reverse((now + store_ms, i, c.token)));
            }
            Decision::Done(o) => c.end = Some((now, o)),
        }
        // What the host does: a route woken wakes the calls waiting for its breaker.
        let woken = shared[k].take_woken();
        let on = |c: &Call| c.session.keys().any(|key| woken.contains(key));
        for (j, c) in calls.iter_mut().enumerate().filter(|(j, c)| c.in_breaker_wait && j % instances == k && on(c)) {
            c.token += 1;
            c.in_breaker_wait = false;
            queue.push(Reverse((now, j, c.token)));
        }
    }
    calls
}

/// `per_sec` calls a second, evenly spaced, from `from` for `secs` seconds.
fn arrivals(per_sec: u64, from: u64, secs: u64) -> Vec<u64> {
    (0..per_sec * secs).map(|k| from + k * 1000 / per_sec).collect()
}

fn served(calls: &[&Call]) -> f64 {
    let ok = calls.iter().filter(|c| matches!(c.end, Some((_, Outcome::Success)))).count();
    ok as f64 / calls.len() as f64
}

#[test]
fn overload_at_one_and_a_half_times_capacity_waits_in_line_and_is_served() {
    let cfg = Config::default();
    let mut p = Provider::new(200.0, 20.0);
    let calls = storm(&cfg, &mut p, &arrivals(300, 0, 15), 5, 7);
    let all: Vec<&Call> = calls.iter().collect();
    let rate = served(&all);
    let per_call = p.log.len() as f64 / calls.len() as f64;
    let last_end = calls.iter().filter_map(|c| c.end.map(|e| e.0)).max().unwrap_or(0);
    let rejected = p.log.iter().filter(|l| l.1 == 429).count();
    let mut lat: Vec<u64> = calls.iter().filter_map(|c| c.end.map(|e| e.0 - c.start)).collect();
    lat.sort_unstable();
    let p99 = lat[lat.len() * 99 / 100];
    println!(
        "served {rate:.4}, requests per call {per_call:.3}, 429s {rejected}, last end {last_end} ms, p50 {} p99 {p99}",
        lat[lat.len() / 2]
    );
    assert!(rate >= 0.99, "served {rate}");
    assert!(per_call <= 1.2, "requests per call {per_call}");
    assert!(last_end <= 30_000, "the backlog drains within 15 s of the load: {last_end}");
}

/// Four instances (servers, isolates) share the provider's limit, each with a fourth of the load:
/// each alone learns the provider's whole rate and sends at it, four times over; sharing the
/// bucket (a store 2 ms away), together they keep under it.
#[test]
fn instances_sharing_a_bucket_keep_together_under_the_providers_limit() {
    let cfg = Config::default();
    let run = |bucket| {
        let mut p = Provider::new(200.0, 20.0);
        let calls = fleet(&cfg, &mut p, &arrivals(300, 0, 15), 5, 7, 4, bucket);
        let all: Vec<&Call> = calls.iter().collect();
        let rejected = p.log.iter().filter(|l| l.1 == 429).count();
        (served(&all), rejected, p.log.len() as f64 / calls.len() as f64)
    };
    let (alone_served, alone_429, alone_per_call) = run(None);
    let (served, rejected, per_call) = run(Some(2));
    println!("alone: served {alone_served:.4}, 429s {alone_429}, {alone_per_call:.3} requests a call");
    println!("shared: served {served:.4}, 429s {rejected}, {per_call:.3} requests a call");
    assert!(served >= 0.99, "served {served}");
    assert!(per_call <= 1.05, "requests per call {per_call}");
    assert!(rejected * 10 < alone_429, "429s shared {rejected} vs alone {alone_429}");
}

#[test]
fn overload_without_rate_limit_headers_is_paced_from_the_429s() {
    let cfg = Config::default();
    let mut p = Provider::new(200.0, 20.0);
    p.headers = false;
    let calls = storm(&cfg, &mut p, &arrivals(300, 0, 15), 5, 7);
    let all: Vec<&Call> = calls.iter().collect();
    let rate = served(&all);
    let per_call = p.log.len() as f64 / calls.len() as f64;
    println!("served {rate:.4}, requests per call {per_call:.3}");
    assert!(rate >= 0.95, "served {rate}");
    assert!(per_call <= 1.5, "requests per call {per_call}");
}

#[test]
fn an_outage_is_waited_out_and_recovery_is_found_within_a_second() {
    let cfg = Config::default();
    let mut p = Provider::new(200.0, 20.0);
    p.outage = Some((5_000, 15_000));
    let calls = storm(&cfg, &mut p, &arrivals(100, 0, 25), 5, 11);
    let during: Vec<&Call> = calls.iter().filter(|c| (5_000..15_000).contains(&c.start)).collect();
    let after: Vec<&Call> = calls.iter().filter(|c| c.start >= 15_000).collect();
    let sent_during = p.log.iter().filter(|l| (5_000..15_000).contains(&l.0)).count();
    let per_call = sent_during as f64 / during.len() as f64;
    let first_ok = p.log.iter().find(|l| l.0 >= 15_000 && l.1 == 200).map(|l| l.0 - 15_000);
    let (during_ok, after_ok) = (served(&during), served(&after));
    println!("outage: {per_call:.3} requests per call, first success +{first_ok:?} ms, served during {during_ok:.3}, after {after_ok:.3}");
    assert!(per_call <= 1.1, "requests per call during the outage: {per_call}");
    assert!(first_ok.is_some_and(|ms| ms <= 1_000), "first success after recovery: {first_ok:?}");
    assert!(after_ok >= 0.99, "calls made after recovery served: {after_ok}");
    assert!(during_ok >= 0.9, "calls made during the outage served within their deadline: {during_ok}");
}

#[test]
fn twenty_calls_each_rate_limited_once_all_succeed() {
    let cfg = Config::default();
    // Capacity for all 20 at once, but each call's first request is turned away with a hint.
    let mut shared = Shared::new(&cfg);
    let mut ok = 0;
    let mut sessions: Vec<(Session, Option<Observation>, u32)> =
        (0..20).map(|_| (Session::new(&cfg, vec![Route::new("p", 4)], false), None, 0)).collect();
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = (0..20).map(|i| Reverse((0, i))).collect();
    let mut rng = 5u64;
    while let Some(Reverse((now, i))) = queue.pop() {
        let (s, seen, sent) = &mut sessions[i];
        match s.next(&mut shared, seen.as_ref(), now, llm_retry::rng::next_f64(&mut rng)) {
            Decision::Attempt { .. } => {
                *sent += 1;
                let mut h = Headers::new();
                let status = if *sent == 1 {
                    h.push("retry-after", "1");
                    429
                } else {
                    200
                };
                *seen = Some(Observation::Response { status, headers: h, body: None });
                queue.push(Reverse((now + 5, i)));
            }
            Decision::Wait { ms, .. } => queue.push(Reverse((now + ms, i))),
            Decision::Slot { .. } => unreachable!("pacing is not shared here"),
            Decision::Done(o) => ok += usize::from(o == Outcome::Success),
        }
    }
    assert_eq!(ok, 20);
}
