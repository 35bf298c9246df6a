//! How fast the pure engine decides: whole sessions of 503, 503, 200 driven with a fake clock.
//! Run: `cargo run --release --example engine_bench` (or `make bench`).

use std::hint::black_box;
use std::time::Instant;

use llm_retry::policy::classify::Observation;
use llm_retry::policy::config::Config;
use llm_retry::policy::engine::{Decision, Route, Session, Shared};
use llm_retry::policy::Headers;

fn main() {
    // Breaker and budget off: with every call failing twice they would (rightly) stop retries.
    let cfg = Config { breaker: None, budget: None, ..Config::default() };
    let mut shared = Shared::new(&cfg);
    let calls = 200_000u64;
    let (mut decisions, mut now) = (0u64, 1_700_000_000_000u64);
    let start = Instant::now();
    for _ in 0..calls {
        let mut s = Session::new(&cfg, vec![Route::new("https://api.example.com gpt-4o", 4)], false);
        let mut statuses = [503u16, 503, 200].into_iter();
        let mut seen: Option<Observation> = None;
        loop {
            decisions += 1;
            match s.next(&mut shared, seen.as_ref(), now, 0.5) {
                Decision::Attempt { .. } => {
                    let status = statuses.next().unwrap_or(200);
                    seen = Some(Observation::Response { status, headers: Headers::new(), body: None });
                }
                Decision::Wait { ms, .. } => now += ms,
                Decision::Slot { .. } => s.grant(None),
                Decision::Done(o) => {
                    black_box(o);
                    break;
                }
            }
            while let Some(e) = s.poll_event() {
                black_box(e);
            }
        }
        now += 1;
    }
    let ns = start.elapsed().as_nanos() as f64;
    println!(
        "engine: {:.0} ns per decision, {:.2} µs per 3-attempt call ({decisions} decisions)",
        ns / decisions as f64,
        ns / calls as f64 / 1000.0
    );
}
