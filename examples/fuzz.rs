//! `make fuzz`: a long, seeded run of the pure core (`policy::*`) natively, ≥ 10 million inputs.
//!
//! | target   | inputs                                                                  | checked against |
//! |----------|-------------------------------------------------------------------------|-----------------|
//! | `hints`  | response headers: `retry-after-ms`, `Retry-After` (seconds, the three HTTP-date forms), OpenAI's `x-ratelimit-*` (Go durations), Anthropic's RFC 3339 resets, `x-should-retry`; generated values, mutated ones, huge numbers, Unicode | an independent oracle of the documented rules for generated values (each parser on its own and `wait_hint`'s precedence); no panic for the rest |
//! | `classify` | random observations, `retryOn` sets, idempotency                      | the table in `classify.rs` |
//! | `config` | random `Config`s, NaN/∞/extremes included                                | the documented ranges; an error names an option that is out of range |
//! | `stream` | event streams of the providers' pieces, mutated, fed whole and split at random points | the same commit/failure state however the bytes arrive; no panic |
//! | `engine` | clients (a `Shared`) with 1–6 concurrent `Session`s on 1–4 routes, driven to completion by a fake event loop: random observations, latencies, late timers, clock jumps, abandoned waits, `rand` values | every session ends within a bounded number of steps; attempts within each route's `maxAttempts` (so within their sum); no wait or attempt timeout reaches past the deadline; waits within `max(backoff.maxMs, maxRetryAfterMs)` and never under the server's hint; one final event; reports that add up |
//!
//! Every input is generated from `(seed, target, index)`, so a failure names the input that
//! reproduces it: `cargo run --release --example fuzz -- --replay engine:12345` runs that one
//! input alone and prints it. Panics (the crate's, or a broken invariant) are caught per input
//! with `catch_unwind` (built with `panic = "unwind"` and overflow checks: see the Makefile).
//!
//! Options: `--seed N` (default 2026), `--scale F` (input counts × F), `--threads N`,
//! `--only TARGET`, `--replay TARGET:INDEX`.
//!
//! The engine's API may change (new wait causes, decision fields, events): everything this
//! driver does with `Session`, `Decision`, `Event` and `Outcome` is in `drive_engine` below.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use llm_retry::policy::backoff::{Backoff, Jitter};
use llm_retry::policy::breaker::BreakerConfig;
use llm_retry::policy::budget::BudgetConfig;
use llm_retry::policy::classify::{classify, Class, Observation, Reason, StatusSet};
use llm_retry::policy::config::{Config, MAX_ATTEMPTS, MAX_MS};
use llm_retry::policy::hints::{self, HintSource};
use llm_retry::policy::Headers;

// ---------------------------------------------------------------------------------------------
// Seeded randomness (splitmix64; one generator per input).

struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    fn for_input(seed: u64, target: usize, index: u64) -> Self {
        Rng(mix(seed ^ mix(target as u64 + 1) ^ mix(index ^ 0x5eed)))
    }
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi == u64::MAX && lo == 0 {
            return self.u64();
        }
        lo + self.below(hi - lo + 1)
    }
    fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    /// Small numbers mostly, now and then anything up to `max`.
    fn skewed(&mut self, max: u64) -> u64 {
        match self.below(10) {
            0..=5 => self.range(0, max.min(100)),
            6..=7 => self.range(0, max.min(100_000)),
            8 => *self.pick(&[0, 1, max / 2, max.saturating_sub(1), max]),
            _ => self.range(0, max),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the inputs exercised, printed per target (so a generator that stopped reaching a path
// shows). Names are registered on first use.

static TALLY: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL_TALLY: RefCell<Vec<(&'static str, u64)>> = const { RefCell::new(Vec::new()) };
}

fn tally(name: &'static str) {
    LOCAL_TALLY.with(|t| {
        let mut t = t.borrow_mut();
        match t.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => t.push((name, 1)),
        }
    });
}

/// Moves this thread's tally into the shared one.
fn flush_tally() {
    let local = LOCAL_TALLY.with(|t| std::mem::take(&mut *t.borrow_mut()));
    let mut all = TALLY.lock().unwrap();
    for (name, c) in local {
        match all.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += c,
            None => all.push((name, c)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targets. Each takes its input's generator and whether to print the input (replay); a broken
// invariant panics.

type Target = fn(&mut Rng, bool) -> u64;

/// (name, run one input (returns the inputs it counts as), inputs at scale 1).
const TARGETS: [(&str, Target, u64); 6] = [
    ("hints", hints_input, 4_000_000),
    ("classify", classify_input, 2_000_000),
    ("config", config_input, 1_500_000),
    ("engine", engine_input, 1_000_000),
    ("stream", stream_input, 1_500_000),
    ("health", health_input, 500_000),
];

// ----- health --------------------------------------------------------------------------------

/// Breakers of several instances living through random failures, successes, probes and pauses,
/// telling a store (records merged by `Record::join`) and adopting what it holds, at random
/// moments. Invariants: the store's fields never go down; adopting a record twice changes nothing
/// the second time; an adopted opening that is later than the breaker's own last change and still
/// running refuses sends (unless the breaker's own probe is out); an adopted closing later than
/// its own last change leaves it closed.
fn health_input(r: &mut Rng, verbose: bool) -> u64 {
    use llm_retry::policy::breaker::{Admit, Breaker, State};
    use llm_retry::policy::health::Record;

    let cfg = BreakerConfig {
        failure_threshold: r.range(1, 5) as u32,
        cooldown_ms: r.skewed(10_000),
        max_cooldown_ms: r.skewed(100_000),
    };
    let cfg = BreakerConfig { max_cooldown_ms: cfg.max_cooldown_ms.max(cfg.cooldown_ms), ..cfg };
    let n = r.range(2, 4) as usize;
    let mut breakers: Vec<Breaker> = (0..n).map(|_| Breaker::new(cfg)).collect();
    let mut store = Record::default();
    let mut now = if r.chance(0.05) { u64::MAX - r.below(1_000_000) } else { 1_700_000_000_000 + r.below(1_000_000) };
    let steps = r.range(1, 60);
    if verbose {
        eprintln!("{cfg:?}, {n} instances, {steps} steps, start {now}");
    }
    for _ in 0..steps {
        now = now.saturating_add(r.skewed(5_000));
        let i = r.below(n as u64) as usize;
        let b = &mut breakers[i];
        match r.below(7) {
            0 | 1 => {
                tally("health: failure");
                b.record_failure(now);
            }
            2 => {
                tally("health: success");
                b.record_success(now);
            }
            3 => {
                if b.check(now) == Admit::Yes {
                    tally("health: admitted");
                    b.admit(now);
                }
            }
            4 => b.cool_until(now.saturating_add(r.skewed(60_000))),
            5 => {
                tally("health: tell");
                let before = store;
                store = store.join(b.record());
                assert!(
                    store.opened_at >= before.opened_at
                        && store.open_until >= before.open_until
                        && store.closed_at >= before.closed_at
                        && store.cooled_until >= before.cooled_until,
                    "a field of the store went down: {before:?} → {store:?}"
                );
            }
            _ => {
                tally("health: adopt");
                let own = b.record();
                let last_change = own.opened_at.max(own.closed_at);
                let told = store.join(own);
                b.adopt(&told, now);
                assert_eq!(b.adopt(&told, now), None, "adopting the same record twice changed the breaker again");
                if told.opened_at > last_change && told.open_until(now).is_some() {
                    // Open now, or half-open with this instance's own live probe out: either refuses.
                    tally("health: adopted an opening");
                    assert!(b.check(now) != Admit::Yes, "an adopted running opening admitted a send: {told:?} → {b:?}");
                } else if told.closed_at > last_change && told.closed_at > told.opened_at {
                    tally("health: adopted a closing");
                    assert_eq!(b.state(), State::Closed, "{told:?} → {b:?}");
                }
            }
        }
    }
    1
}

// ----- stream --------------------------------------------------------------------------------

/// Pieces of the providers' event streams, good and bad, and junk to mutate them with.
const STREAM_PIECES: &[&str] = &[
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"h\u{e9}\\\"llo\"}}\n\n",
    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
    "data: {\"error\":{\"message\":\"x\",\"type\":\"server_error\",\"code\":null}}\n\n",
    "data: [DONE]\n\n",
    "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{}}\n\n",
    "event: error\ndata: {\"type\":\"error\",\"code\":\"insufficient_quota\",\"message\":\"q\"}\n\n",
    "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\"}}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n",
    ": keep-alive\n\n",
    "data: {\"a\":[[[[[[[[{\"b\":\"\\u00e9\"}]]]]]]]]}\n\n",
    "\r", "\n", ":", "{", "}", "[", "\"", "\\", "data:", "event:", "\u{1F525}", "\u{fffd}",
];

/// A stream of pieces (some mutated), fed whole and then split at random points: the same state,
/// no panic — however the bytes arrive.
fn stream_input(r: &mut Rng, verbose: bool) -> u64 {
    use llm_retry::policy::stream::{State, Watch};
    let mut bytes = Vec::new();
    for _ in 0..r.range(1, 12) {
        let piece = r.pick(STREAM_PIECES).as_bytes();
        if r.chance(0.2) && !piece.is_empty() {
            let mut p = piece.to_vec();
            let at = r.below(p.len() as u64) as usize;
            match r.below(3) {
                0 => p[at] = r.below(256) as u8,
                1 => drop(p.remove(at)),
                _ => p.insert(at, r.below(256) as u8),
            }
            bytes.extend_from_slice(&p);
        } else {
            bytes.extend_from_slice(piece);
        }
    }
    if r.chance(0.01) {
        bytes.extend(std::iter::repeat_n(b'x', 70_000));
    }
    if verbose {
        eprintln!("{:?}", String::from_utf8_lossy(&bytes));
    }
    let run = |chunks: &mut dyn Iterator<Item = &[u8]>| {
        let mut w = Watch::default();
        for c in chunks {
            let s = w.feed(c);
            if s != State::Pending {
                return s;
            }
        }
        w.ended()
    };
    let whole = run(&mut std::iter::once(&bytes[..]));
    let mut cuts: Vec<usize> = (0..r.range(1, 6)).map(|_| r.below(bytes.len() as u64 + 1) as usize).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        pieces.push(&bytes[at..c]);
        at = c;
    }
    let split = run(&mut pieces.iter().copied());
    // Only the 64 KB bound depends on where the chunks end (it is checked per chunk).
    if bytes.len() <= llm_retry::policy::stream::MAX_PREAMBLE {
        assert_eq!(whole, split, "the state depends on how the bytes were split");
    }
    tally(match whole {
        State::Commit => "commit",
        State::Failed { .. } => "failed",
        State::Pending => "pending",
    });
    1
}

// ----- hints ---------------------------------------------------------------------------------

/// A header value and what each parser must make of it (`known`: generated, so the oracle
/// applies; mutated or random values are only checked for not panicking).
#[derive(Clone, Debug, Default)]
struct Val {
    text: String,
    /// `retry-after-ms` and the `remaining` counts: a decimal number of ms, rounded up.
    dec1: Option<u64>,
    /// `Retry-After` delta-seconds as ms.
    dec1000: Option<u64>,
    /// An HTTP-date, ms since the epoch.
    date: Option<u64>,
    /// A Go duration, ms rounded up.
    dur: Option<u64>,
    /// An RFC 3339 instant, ms since the epoch.
    rfc: Option<i64>,
    known: bool,
}

fn digits(r: &mut Rng, len: usize) -> String {
    (0..len).map(|_| char::from(b'0' + r.below(10) as u8)).collect()
}

/// `digits` as an integer, saturated at u64::MAX (as the crate's fold does).
fn whole_sat(d: &str) -> u128 {
    let mut n: u128 = 0;
    for b in d.bytes() {
        n = (n * 10 + u128::from(b - b'0')).min(u128::from(u64::MAX));
    }
    n
}

/// ceil(0.frac × unit), exactly (frac has at most 25 digits).
fn frac_ceil(frac: &str, unit: u64) -> u128 {
    if frac.is_empty() {
        return 0;
    }
    let num = frac.bytes().fold(0u128, |n, b| n * 10 + u128::from(b - b'0')) * u128::from(unit);
    let den = 10u128.pow(frac.len() as u32);
    num.div_ceil(den)
}

/// `whole[.frac]` × unit, rounded up, saturated: the documented decimal rule.
fn decimal_expect(whole: &str, frac: &str, unit: u64) -> u64 {
    (whole_sat(whole) * u128::from(unit) + frac_ceil(frac, unit)).min(u128::from(u64::MAX)) as u64
}

fn gen_decimal(r: &mut Rng) -> Val {
    let len = match r.below(10) {
        0..=6 => r.range(1, 4),
        7..=8 => r.range(5, 12),
        _ => r.range(13, 25),
    } as usize;
    let mut whole = digits(r, len);
    if r.chance(0.3) {
        whole = r.pick(&["0", "1", "5", "30", "60", "120", "18446744073709551615", "18446744073709551616"]).to_string();
    }
    let frac = if r.chance(0.3) {
        let n = r.range(1, 20) as usize;
        digits(r, n)
    } else {
        String::new()
    };
    let text = if frac.is_empty() { whole.clone() } else { format!("{whole}.{frac}") };
    Val {
        dur: (text == "0").then_some(0),
        dec1: Some(decimal_expect(&whole, &frac, 1)),
        dec1000: Some(decimal_expect(&whole, &frac, 1000)),
        text,
        known: true,
        ..Val::default()
    }
}

/// Days since 1970-01-01 of the first day of each year 0..=10_000, counted year by year (not
/// by the crate's formula).
fn year_starts() -> &'static [i64] {
    static T: OnceLock<Vec<i64>> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = vec![0i64; 10_001];
        for y in 1971..=10_000 {
            t[y] = t[y - 1] + year_len(y as u32 - 1);
        }
        for y in (0..1970).rev() {
            t[y] = t[y + 1] - year_len(y as u32);
        }
        t
    })
}
fn leap(y: u32) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}
fn year_len(y: u32) -> i64 {
    if leap(y) {
        366
    } else {
        365
    }
}
fn month_len(y: u32, m: u32) -> u32 {
    [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1]
}
fn days_of(y: u32, m: u32, d: u32) -> i64 {
    year_starts()[y as usize] + (1..m).map(|mm| i64::from(month_len(y, mm))).sum::<i64>() + i64::from(d) - 1
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// A civil date and time, valid unless `invalid` (then one field is out of range).
struct Civil {
    y: u32,
    m: u32,
    d: u32,
    hh: u32,
    mm: u32,
    ss: u32,
    valid: bool,
}

fn civil(r: &mut Rng, years: (u32, u32)) -> Civil {
    let y = r.range(u64::from(years.0), u64::from(years.1)) as u32;
    let m = r.range(1, 12) as u32;
    let d = if r.chance(0.1) { month_len(y, m) } else { r.range(1, u64::from(month_len(y, m))) as u32 };
    let mut c =
        Civil { y, m, d, hh: r.range(0, 23) as u32, mm: r.range(0, 59) as u32, ss: r.range(0, 60) as u32, valid: true };
    if r.chance(0.05) {
        c.valid = false;
        match r.below(5) {
            0 => c.m = *r.pick(&[0, 13, 99]),
            1 => c.d = month_len(c.y, c.m) + 1,
            2 => c.hh = r.range(24, 99) as u32,
            3 => c.mm = r.range(60, 99) as u32,
            _ => c.ss = r.range(61, 99) as u32,
        }
    }
    c
}

fn civil_secs(c: &Civil) -> i64 {
    days_of(c.y, c.m, c.d) * 86_400 + i64::from(c.hh * 3600 + c.mm * 60 + c.ss)
}

fn recase(r: &mut Rng, s: &str) -> String {
    match r.below(4) {
        0 => s.to_ascii_uppercase(),
        1 => s.to_ascii_lowercase(),
        _ => s.to_string(),
    }
}

fn gen_http_date(r: &mut Rng) -> Val {
    let form = r.below(3);
    let years = match form {
        1 if r.chance(0.8) => (1970, 2069), // RFC 850's two-digit years
        _ if r.chance(0.05) => (1600, 1969),
        _ => (1970, 9999),
    };
    let c = civil(r, years);
    let weekday_i = if c.valid { (days_of(c.y, c.m, c.d) + 3).rem_euclid(7) as usize } else { 0 };
    let long = DAYS[weekday_i];
    let short = &long[..3];
    let month = recase(r, MONTHS[(c.m.clamp(1, 12) - 1) as usize]);
    let two = |r: &mut Rng, v: u32| if r.chance(0.9) { format!("{v:02}") } else { v.to_string() };
    let (hh, mm, ss) = (two(r, c.hh), two(r, c.mm), two(r, c.ss));
    let mut month_field = month.clone();
    if !(1..=12).contains(&c.m) {
        month_field = "Foo".into();
    }
    let text = match form {
        0 => format!(
            "{}, {} {month_field} {:04} {hh}:{mm}:{ss} {}",
            recase(r, short),
            two(r, c.d),
            c.y,
            recase(r, "GMT")
        ),
        1 => {
            let year = if r.chance(0.8) && c.y >= 1970 && c.y <= 2069 {
                format!("{:02}", c.y % 100)
            } else {
                format!("{:04}", c.y)
            };
            let day = if r.chance(0.5) { long } else { short };
            format!("{}, {}-{month_field}-{year} {hh}:{mm}:{ss} GMT", recase(r, day), two(r, c.d))
        }
        _ => {
            let day = if r.chance(0.5) { format!("{:>2}", c.d) } else { c.d.to_string() };
            format!("{} {month_field} {day} {hh}:{mm}:{ss} {:04}", recase(r, short), c.y)
        }
    };
    // RFC 850's two-digit years: 70–99 are 19xx, 00–69 20xx (the generator only makes those).
    let date = (c.valid && c.y >= 1970).then(|| civil_secs(&c) as u64 * 1000);
    Val { text, date, known: true, ..Val::default() }
}

/// A Go duration ("1m30.5s", "250us", "+0"), with its value computed component by component.
fn gen_duration(r: &mut Rng) -> Val {
    const UNITS: [(&str, u64); 8] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    let mut text = String::new();
    if r.chance(0.1) {
        text.push('+');
    }
    if r.chance(0.05) {
        text.push('0');
        let dec = (text == "0").then_some(0); // a bare 0 is a decimal too
        return Val { text, dur: Some(0), dec1: dec, dec1000: dec, known: true, ..Val::default() };
    }
    let mut nanos: u128 = 0;
    for _ in 0..r.range(1, 4) {
        let (unit, scale) = *r.pick(&UNITS);
        let n = if r.chance(0.9) { r.range(1, 4) } else { r.range(5, 22) } as usize;
        let whole = digits(r, n);
        let n = if r.chance(0.3) { r.range(1, 12) as usize } else { 0 };
        let frac = digits(r, n);
        let _ = write!(text, "{whole}{}{frac}{unit}", if frac.is_empty() { "" } else { "." });
        // Each component is rounded up to a whole ns and saturates on its own; the sum saturates.
        nanos += u128::from(decimal_expect(&whole, &frac, scale));
    }
    let nanos = nanos.min(u128::from(u64::MAX)) as u64;
    let ms = if nanos == u64::MAX { u64::MAX } else { nanos.div_ceil(1_000_000) };
    Val { text, dur: Some(ms), known: true, ..Val::default() }
}

fn gen_rfc3339(r: &mut Rng) -> Val {
    let years = if r.chance(0.9) { (1970, 2100) } else { (0, 9999) };
    let c = civil(r, years);
    let sep = *r.pick(&["T", "t", " "]);
    let n = if r.chance(0.5) { r.range(1, 12) as usize } else { 0 };
    let frac = digits(r, n);
    let (offset, off_secs, off_ok) = match r.below(4) {
        0 => ("Z".to_string(), 0, true),
        1 => ("z".to_string(), 0, true),
        _ => {
            let (hmax, mmax) = (if r.chance(0.95) { 23 } else { 30 }, if r.chance(0.95) { 59 } else { 70 });
            let (h, m) = (r.range(0, hmax), r.range(0, mmax));
            let sign = if r.chance(0.5) { 1 } else { -1 };
            (
                format!("{}{h:02}:{m:02}", if sign > 0 { '+' } else { '-' }),
                sign * (h as i64 * 3600 + m as i64 * 60),
                h <= 23 && m <= 59,
            )
        }
    };
    let text = format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}{}{}{offset}",
        c.y,
        c.m,
        c.d,
        c.hh,
        c.mm,
        c.ss,
        if frac.is_empty() { "" } else { "." },
        frac
    );
    let rfc = (c.valid && off_ok).then(|| (civil_secs(&c) - off_secs) * 1000 + frac_ceil(&frac, 1000) as i64);
    Val { text, rfc, known: true, ..Val::default() }
}

/// Values no parser takes.
fn gen_garbage(r: &mut Rng) -> Val {
    let text = r
        .pick(&[
            "", "abc", "-5", "1e3", "5 5", "1.2.3", "+5", "five", "0x10", "NaN", "∞", "٣", "１２", "-0", "now", "Z",
            "12:00", "T", "5m-3s", "1..5",
        ])
        .to_string();
    Val { text, known: true, ..Val::default() }
}

/// Random characters, from an alphabet that is mostly the parsers' own.
fn gen_random(r: &mut Rng) -> Val {
    const ALPHABET: &[char] = &[
        '0', '1', '5', '9', '.', ':', '-', '+', ',', ' ', '\t', 'T', 'Z', 'z', 'G', 'M', 's', 'm', 'h', 'u', 'n', 'µ',
        'μ', 'S', 'u', 'n', 'N', 'o', 'v', 'é', '😀', '\u{0}', '\u{3000}', '٣', '１',
    ];
    let text = (0..r.range(0, 40)).map(|_| *r.pick(ALPHABET)).collect();
    Val { text, ..Val::default() }
}

/// A generated value with one to three edits: no oracle, only "no panic".
fn mutate(r: &mut Rng, mut v: Val) -> Val {
    let mut chars: Vec<char> = v.text.chars().collect();
    for _ in 0..r.range(1, 3) {
        let at = r.below(chars.len() as u64 + 1) as usize;
        match r.below(5) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars.insert(at, *r.pick(&['0', '9', '.', ':', '-', '+', ' ', 'µ', 'é', '😀', 'e', 's', 'T'])),
            2 if at < chars.len() => chars[at] = *r.pick(&['0', 'x', '.', ' ', 'µ', '9']),
            3 => chars.truncate(at),
            _ => {
                let dup: Vec<char> = chars.clone();
                chars.extend(dup);
            }
        }
    }
    v.text = chars.into_iter().collect();
    v.known = false;
    v
}

fn pad(r: &mut Rng, mut v: Val) -> Val {
    if r.chance(0.1) {
        v.text = format!("{}{}{}", r.pick(&[" ", "  ", "\t", ""]), v.text, r.pick(&[" ", "\t ", ""]));
    }
    v
}

fn gen_val(r: &mut Rng) -> Val {
    let v = match r.below(20) {
        0..=4 => gen_decimal(r),
        5..=7 => gen_http_date(r),
        8..=10 => gen_duration(r),
        11..=13 => gen_rfc3339(r),
        14..=15 => gen_garbage(r),
        16 => gen_random(r),
        _ => {
            let base = match r.below(4) {
                0 => gen_decimal(r),
                1 => gen_http_date(r),
                2 => gen_duration(r),
                _ => gen_rfc3339(r),
            };
            mutate(r, base)
        }
    };
    pad(r, v)
}

const OPENAI: [(&str, &str); 2] = [
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
];
const ANTHROPIC: [(&str, &str); 4] = [
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
];

fn ms_until(at: i64, now: u64) -> u64 {
    (i128::from(at) - i128::from(now)).clamp(0, i128::from(u64::MAX)) as u64
}

/// The documented rule (module docs of hints.rs), over the generated values' known parses.
fn expected_hint(hs: &[(String, Val)], status: u16, now: u64) -> Option<(u64, HintSource)> {
    let first = |name: &str| hs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    if let Some(ms) = first("retry-after-ms").and_then(|v| v.dec1) {
        return Some((ms, HintSource::RetryAfterMs));
    }
    if let Some(ms) = first("retry-after").and_then(|v| v.dec1000.or(v.date.map(|d| d.saturating_sub(now)))) {
        return Some((ms, HintSource::RetryAfter));
    }
    if status != 429 {
        return None;
    }
    let reset = |limits: &[(&str, &str)], f: &dyn Fn(&Val) -> Option<u64>| {
        let l: Vec<(bool, Option<u64>)> = limits
            .iter()
            .map(|(rem, res)| (first(rem).and_then(|v| v.dec1) == Some(0), first(res).and_then(f)))
            .collect();
        if l.iter().any(|x| x.0) {
            l.iter().filter(|x| x.0).filter_map(|x| x.1).max()
        } else {
            l.iter().filter_map(|x| x.1).min()
        }
    };
    if let Some(ms) = reset(&OPENAI, &|v| v.dur) {
        return Some((ms, HintSource::OpenAiReset));
    }
    reset(&ANTHROPIC, &|v| v.rfc.map(|at| ms_until(at, now))).map(|ms| (ms, HintSource::AnthropicReset))
}

/// A rate limit's `remaining` count: mostly 0 (exhausted) or a few.
fn remaining(r: &mut Rng) -> Val {
    let text = r.pick(&["0", "0", "1", "7", "0.0", "00"]).to_string();
    let (whole, frac) =
        text.split_once('.').map_or((text.clone(), String::new()), |(w, f)| (w.to_string(), f.to_string()));
    Val {
        dur: (text == "0").then_some(0),
        dec1: Some(decimal_expect(&whole, &frac, 1)),
        dec1000: Some(decimal_expect(&whole, &frac, 1000)),
        text,
        known: true,
        ..Val::default()
    }
}

fn random_now(r: &mut Rng) -> u64 {
    match r.below(10) {
        0 => r.u64(),
        1 => *r.pick(&[0, 1, u64::MAX, u64::MAX - 1, 253_402_300_799_000]),
        _ => 1_700_000_000_000 + r.below(400_000_000_000),
    }
}

fn hints_input(r: &mut Rng, verbose: bool) -> u64 {
    let now = random_now(r);
    let status = *r.pick(&[429, 429, 429, 503, 500, 200, 408, 0, 999]);
    // Names: the ones the parser reads (in any ASCII case), duplicates, and others.
    let mut hs: Vec<(String, Val)> = Vec::new();
    // Half the inputs carry a header of each kind with a value of its own kind (so hints are
    // found, and precedence and the reset rules are exercised), the rest anything anywhere.
    if r.chance(0.5) {
        for _ in 0..r.range(1, 4) {
            let (name, v) = match r.below(6) {
                0 => ("retry-after-ms", gen_decimal(r)),
                1 => ("retry-after", gen_decimal(r)),
                2 => ("retry-after", gen_http_date(r)),
                3 => {
                    let (rem, res) = *r.pick(&OPENAI);
                    hs.push((rem.to_string(), remaining(r)));
                    (res, gen_duration(r))
                }
                4 => {
                    let (rem, res) = *r.pick(&ANTHROPIC);
                    hs.push((rem.to_string(), remaining(r)));
                    (res, gen_rfc3339(r))
                }
                _ => (
                    "x-should-retry",
                    Val { text: r.pick(&["true", "false"]).to_string(), known: true, ..Val::default() },
                ),
            };
            let v = pad(r, v);
            hs.push((name.to_string(), v));
        }
    }
    for _ in 0..r.range(0, 4) {
        let name = if r.chance(0.9) {
            hints::HEADER_NAMES[r.below(hints::HEADER_NAMES.len() as u64) as usize]
        } else {
            "x-other"
        };
        let mut v = gen_val(r);
        if name == "x-should-retry" && r.chance(0.6) {
            let word = *r.pick(&["true", "false", " TRUE ", "False", "yes", ""]);
            v = Val { text: recase(r, word), known: true, ..Val::default() };
        }
        let name = match r.below(3) {
            0 => name.to_ascii_uppercase(),
            1 => name.to_string(),
            _ => name.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect(),
        };
        hs.push((name, v));
    }
    if verbose {
        eprintln!("now {now}, status {status}, headers {hs:#?}");
    }
    let headers: Headers = hs.iter().map(|(n, v)| (n.clone(), v.text.clone())).collect();
    let got = hints::wait_hint(&headers, status, now);
    tally(match got.map(|h| h.source) {
        None => "no hint",
        Some(HintSource::RetryAfterMs) => "retry-after-ms",
        Some(HintSource::RetryAfter) => "retry-after",
        Some(HintSource::OpenAiReset) => "x-ratelimit-reset",
        Some(HintSource::AnthropicReset) => "anthropic-reset",
    });
    if hs.iter().all(|(_, v)| v.known) {
        tally("checked by the oracle");
        let want = expected_hint(&hs, status, now);
        assert_eq!(got.map(|h| (h.ms, h.source)), want, "wait_hint(now {now}, status {status}, {hs:?})");
    }
    let sr = hints::should_retry(&headers);
    let first = hs.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-should-retry")).map(|(_, v)| v.text.trim());
    let want = first.and_then(|t| {
        if t.eq_ignore_ascii_case("true") {
            Some(true)
        } else if t.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    });
    assert_eq!(sr, want, "should_retry({first:?})");
    // Each parser on each value on its own.
    for (_, v) in &hs {
        let t = v.text.as_str();
        let (ra, hd, du, rf) = (hints::retry_after(t, now), hints::http_date(t), hints::duration(t), hints::rfc3339(t));
        if v.known {
            assert_eq!(ra, v.dec1000.or(v.date.map(|d| d.saturating_sub(now))), "retry_after({t:?}, {now})");
            assert_eq!(hd, v.date, "http_date({t:?})");
            assert_eq!(du, v.dur, "duration({t:?})");
            assert_eq!(rf, v.rfc, "rfc3339({t:?})");
        }
    }
    1
}

// ----- classify ------------------------------------------------------------------------------

fn random_status(r: &mut Rng) -> u16 {
    match r.below(10) {
        0..=6 => *r.pick(&[
            200, 201, 204, 301, 304, 399, 400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529, 599,
        ]),
        7..=8 => r.range(100, 599) as u16,
        _ => r.range(0, u64::from(u16::MAX)) as u16,
    }
}

fn random_body(r: &mut Rng) -> Option<String> {
    const QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
    match r.below(8) {
        0 => None,
        1 => Some(QUOTA.into()),
        2 => Some(r#"{"error":{"message":"insufficient_quota is not this","code":"rate_limit_exceeded"}}"#.into()),
        3 => Some(r#""insufficient_quota""#.into()),
        4 => Some(r#""insufficient_quot"#.into()),
        5 => Some(String::new()),
        6 => Some(gen_random(r).text),
        _ => Some(format!("{}\"insufficient_quota\"{}", gen_random(r).text, gen_random(r).text)),
    }
}

fn random_status_set(r: &mut Rng) -> StatusSet {
    if r.chance(0.5) {
        return StatusSet::default();
    }
    let mut s = StatusSet::empty();
    for _ in 0..r.range(0, 12) {
        s.insert(random_status(r));
    }
    s
}

fn classify_input(r: &mut Rng, verbose: bool) -> u64 {
    let retry_on = random_status_set(r);
    let idempotent = r.chance(0.5);
    let obs = match r.below(10) {
        0 => Observation::NetworkError,
        1 => Observation::Timeout,
        2 => Observation::Aborted,
        _ => {
            let mut h = Headers::new();
            if r.chance(0.4) {
                let (name, word) = (recase(r, "x-should-retry"), *r.pick(&["true", "false", " true ", "maybe", ""]));
                h.push(name, recase(r, word));
            }
            if r.chance(0.3) {
                h.push("retry-after", gen_val(r).text);
            }
            Observation::Response { status: random_status(r), headers: h, body: random_body(r) }
        }
    };
    if verbose {
        eprintln!("{obs:?}, idempotent {idempotent}");
    }
    let got = classify(&obs, &retry_on, idempotent);
    // The table in classify.rs.
    let want = match &obs {
        Observation::Aborted => (Class::Abort, Reason::Aborted),
        Observation::NetworkError => (Class::Transient, Reason::NetworkError),
        Observation::Timeout if idempotent => (Class::Transient, Reason::Timeout),
        Observation::Timeout => (Class::Final, Reason::TimeoutNotIdempotent),
        Observation::Stalled => (Class::Transient, Reason::FirstTokenTimeout),
        Observation::Committed { .. } => (Class::Success, Reason::Ok),
        Observation::Response { status, headers, body } | Observation::StreamFailed { status, headers, body } => {
            let s = *status;
            let quota = body.as_deref().is_some_and(|b| b.contains("\"insufficient_quota\""));
            let said = headers.get("x-should-retry").map(str::trim).and_then(|v| {
                if v.eq_ignore_ascii_case("true") {
                    Some(true)
                } else if v.eq_ignore_ascii_case("false") {
                    Some(false)
                } else {
                    None
                }
            });
            if s < 400 {
                (Class::Success, Reason::Ok)
            } else if s == 429 && quota {
                (Class::RouteFailure, Reason::InsufficientQuota)
            } else if said == Some(false) {
                (Class::Final, Reason::ServerSaidNo)
            } else if said == Some(true) {
                (Class::Transient, Reason::ServerSaidRetry)
            } else if (100..=599).contains(&s) && retry_on.contains(s) {
                let reason = match s {
                    429 => Reason::RateLimited,
                    500..=599 => Reason::ServerError,
                    _ => Reason::RetryableStatus,
                };
                (Class::Transient, reason)
            } else {
                match s {
                    401 | 403 => (Class::RouteFailure, Reason::Unauthorized),
                    404 => (Class::RouteFailure, Reason::NotFound),
                    500.. => (Class::Final, Reason::ServerError),
                    _ => (Class::Final, Reason::ClientError),
                }
            }
        }
    };
    assert_eq!(got, want, "classify({obs:?}, idempotent {idempotent})");
    tally(got.1.as_str());
    assert!(!got.1.as_str().is_empty());
    1
}

// ----- config --------------------------------------------------------------------------------

fn wild_u64(r: &mut Rng) -> u64 {
    match r.below(6) {
        0 => *r.pick(&[0, 1, MAX_MS - 1, MAX_MS, MAX_MS + 1, u64::MAX]),
        1 => r.u64(),
        _ => r.skewed(MAX_MS + 10),
    }
}

fn wild_f64(r: &mut Rng) -> f64 {
    match r.below(8) {
        0 => *r.pick(&[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            -1.0,
            1e6,
            1e6 + 1e-9,
            100.0,
            100.000_001,
            0.999_999,
        ]),
        1 => f64::from_bits(r.u64()),
        _ => r.f64() * *r.pick(&[1.0, 10.0, 100.0, 1e6, 2e6]),
    }
}

fn wild_config(r: &mut Rng) -> Config {
    let mut c = Config::default();
    let pick_u32 = |r: &mut Rng| match r.below(4) {
        0 => *r.pick(&[0, 1, MAX_ATTEMPTS, MAX_ATTEMPTS + 1, u32::MAX]),
        _ => r.range(0, 120) as u32,
    };
    if r.chance(0.5) {
        c.max_attempts = pick_u32(r);
    }
    if r.chance(0.5) {
        c.backoff.initial_ms = wild_u64(r);
    }
    if r.chance(0.5) {
        c.backoff.max_ms = wild_u64(r);
    }
    if r.chance(0.4) {
        c.backoff.multiplier = wild_f64(r);
    }
    c.backoff.jitter = *r.pick(&[Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated]);
    if r.chance(0.4) {
        c.deadline_ms = wild_u64(r);
    }
    if r.chance(0.4) {
        c.attempt_timeout_ms = if r.chance(0.3) { None } else { Some(wild_u64(r)) };
    }
    if r.chance(0.4) {
        c.max_retry_after_ms = wild_u64(r);
    }
    c.retry_on = random_status_set(r);
    c.idempotent = r.chance(0.5);
    if r.chance(0.5) {
        c.budget =
            if r.chance(0.3) { None } else { Some(BudgetConfig { max_tokens: wild_f64(r), token_ratio: wild_f64(r) }) };
    }
    if r.chance(0.5) {
        c.breaker = if r.chance(0.3) {
            None
        } else {
            Some(BreakerConfig {
                failure_threshold: pick_u32(r),
                cooldown_ms: wild_u64(r),
                max_cooldown_ms: wild_u64(r),
            })
        };
    }
    if r.chance(0.3) {
        c.first_token_timeout_ms = Some(wild_u64(r));
    }
    if r.chance(0.3) {
        c.idle_timeout_ms = Some(wild_u64(r));
    }
    c
}

/// The options of `c` that are out of range, by the documented rules.
fn invalid_options(c: &Config) -> Vec<&'static str> {
    let mut bad = Vec::new();
    let ms = |v: u64, min: u64| v >= min && v <= MAX_MS;
    if !(1..=MAX_ATTEMPTS).contains(&c.max_attempts) {
        bad.push("maxAttempts");
    }
    if !ms(c.backoff.initial_ms, 0) {
        bad.push("backoff.initialMs");
    }
    if !ms(c.backoff.max_ms, 0) || c.backoff.max_ms < c.backoff.initial_ms {
        bad.push("backoff.maxMs");
    }
    if !(c.backoff.multiplier.is_finite() && (1.0..=100.0).contains(&c.backoff.multiplier)) {
        bad.push("backoff.multiplier");
    }
    if !ms(c.deadline_ms, 1) {
        bad.push("deadlineMs");
    }
    if c.attempt_timeout_ms.is_some_and(|t| !ms(t, 1)) {
        bad.push("attemptTimeoutMs");
    }
    if !ms(c.max_retry_after_ms, 0) {
        bad.push("maxRetryAfterMs");
    }
    if let Some(b) = &c.budget {
        if !(b.max_tokens.is_finite() && (1.0..=1e6).contains(&b.max_tokens)) {
            bad.push("budget.maxTokens");
        }
        if !(b.token_ratio.is_finite() && b.token_ratio > 0.0 && b.token_ratio <= b.max_tokens) {
            bad.push("budget.tokenRatio");
        }
    }
    if let Some(b) = &c.breaker {
        if b.failure_threshold == 0 {
            bad.push("breaker.failureThreshold");
        }
        if !ms(b.cooldown_ms, 0) {
            bad.push("breaker.cooldownMs");
        }
        if !ms(b.max_cooldown_ms, 0) || b.max_cooldown_ms < b.cooldown_ms {
            bad.push("breaker.maxCooldownMs");
        }
    }
    if c.first_token_timeout_ms.is_some_and(|t| !ms(t, 1)) {
        bad.push("firstTokenTimeoutMs");
    }
    if c.idle_timeout_ms.is_some_and(|t| !ms(t, 1)) {
        bad.push("idleTimeoutMs");
    }
    bad
}

fn config_input(r: &mut Rng, verbose: bool) -> u64 {
    let c = wild_config(r);
    if verbose {
        eprintln!("{c:#?}");
    }
    let bad = invalid_options(&c);
    tally(if bad.is_empty() { "valid" } else { "invalid" });
    match c.validate() {
        Ok(()) => assert!(bad.is_empty(), "validate accepted {bad:?} out of range: {c:?}"),
        Err(e) => {
            assert!(
                bad.contains(&e.option),
                "validate named {:?} ({}), but the out-of-range options are {bad:?}: {c:?}",
                e.option,
                e.message
            );
            assert!(e.message.starts_with(e.option), "the message names the option: {:?}", e.message);
        }
    }
    1
}

// ----- engine --------------------------------------------------------------------------------

/// A valid config whose waits and deadlines are small enough for sessions to run many steps.
fn engine_config(r: &mut Rng) -> Config {
    for _ in 0..20 {
        let initial = r.skewed(5_000);
        let odd = 1.0 + r.f64() * 9.0;
        let deadline_max = *r.pick(&[100, 5_000, 60_000, 600_000, MAX_MS]);
        let timeout_max = *r.pick(&[50, 5_000, 60_000, MAX_MS]);
        let c = Config {
            max_attempts: if r.chance(0.9) { r.range(1, 6) as u32 } else { r.range(1, u64::from(MAX_ATTEMPTS)) as u32 },
            backoff: Backoff {
                initial_ms: initial,
                max_ms: initial + r.skewed(60_000),
                multiplier: *r.pick(&[1.0, 1.5, 2.0, 3.0, 100.0, odd]),
                jitter: *r.pick(&[Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated]),
            },
            deadline_ms: r.range(1, deadline_max),
            deadline_cuts_attempts: r.chance(0.5),
            attempt_timeout_ms: if r.chance(0.5) { None } else { Some(r.range(1, timeout_max)) },
            retry_on: random_status_set(r),
            max_retry_after_ms: if r.chance(0.5) { 60_000 } else { r.skewed(120_000) },
            idempotent: r.chance(0.3),
            budget: if r.chance(0.4) {
                None
            } else {
                let max_tokens = *r.pick(&[1.0, 2.0, 10.0, 100.0, 1e6]);
                Some(BudgetConfig { max_tokens, token_ratio: (r.f64() * max_tokens).max(1e-3) })
            },
            breaker: if r.chance(0.3) {
                None
            } else {
                let cooldown_ms = r.skewed(60_000);
                let max_cooldown_ms = cooldown_ms + r.skewed(60_000);
                Some(BreakerConfig { failure_threshold: r.range(1, 10) as u32, cooldown_ms, max_cooldown_ms })
            },
            pacing: r.chance(0.7),
            first_token_timeout_ms: None,
            idle_timeout_ms: None,
        };
        if c.validate().is_ok() {
            return c;
        }
    }
    Config::default()
}

/// Response headers with wait hints of every kind, relative to `now`.
fn hint_headers(r: &mut Rng, now: u64) -> Headers {
    let mut h = Headers::new();
    for _ in 0..r.range(0, 3) {
        match r.below(9) {
            0 => h.push("retry-after-ms", r.skewed(200_000).to_string()),
            1 => h.push("Retry-After", r.skewed(300).to_string()),
            2 => {
                let at = (now / 1000).saturating_add(r.skewed(120)).min(253_402_300_799);
                let days = (at / 86_400) as i64;
                let (mut y, mut rest) = (1970u32, days);
                while rest >= year_len(y) {
                    rest -= year_len(y);
                    y += 1;
                }
                let mut m = 1;
                while rest >= i64::from(month_len(y, m)) {
                    rest -= i64::from(month_len(y, m));
                    m += 1;
                }
                let s = at % 86_400;
                let wd = &DAYS[(days + 3).rem_euclid(7) as usize][..3];
                h.push(
                    "retry-after",
                    format!(
                        "{wd}, {:02} {} {y} {:02}:{:02}:{:02} GMT",
                        rest + 1,
                        MONTHS[m as usize - 1],
                        s / 3600,
                        s / 60 % 60,
                        s % 60
                    ),
                );
            }
            3 => {
                let (rem, res) = *r.pick(&OPENAI);
                h.push(rem, r.pick(&["0", "1", "17"]));
                h.push(res, gen_duration(r).text);
            }
            4 => {
                let (rem, res) = *r.pick(&ANTHROPIC);
                h.push(rem, r.pick(&["0", "3"]));
                h.push(res, gen_rfc3339(r).text);
            }
            5 => h.push("x-should-retry", r.pick(&["true", "false"])),
            6 => h.push("retry-after", gen_val(r).text),
            // A whole request limit (what pacing learns a rate from, and shares), often well used.
            7 if r.chance(0.7) => {
                let limit = *r.pick(&[1u64, 2, 5, 20, 500, 10_000, u64::MAX]);
                let remaining =
                    if r.chance(0.8) { r.below(limit.saturating_add(1).max(1)) } else { r.skewed(1_000_000) };
                h.push("x-ratelimit-limit-requests", limit.to_string());
                h.push("x-ratelimit-remaining-requests", remaining.to_string());
                h.push("x-ratelimit-reset-requests", gen_duration(r).text);
            }
            _ => h.push("retry-after-ms", r.pick(&["0", "0.5", "99999999999999999999999", "-1", "abc"])),
        }
    }
    h
}

fn engine_observation(r: &mut Rng, now: u64) -> Observation {
    match r.below(100) {
        0..=59 => {
            let status = match r.below(10) {
                0..=3 => *r.pick(&[200, 200, 201, 304]),
                4..=5 => 429,
                6..=7 => *r.pick(&[500, 502, 503, 504, 529, 408, 409]),
                8 => *r.pick(&[400, 401, 403, 404, 413, 422]),
                _ => random_status(r),
            };
            let body = if status == 429 && r.chance(0.1) { random_body(r) } else { None };
            Observation::Response { status, headers: hint_headers(r, now), body }
        }
        60..=79 => Observation::NetworkError,
        80..=91 => Observation::Timeout, // an SDK's own timeout, before the attempt's (retry(fn))
        _ => Observation::Aborted,
    }
}

/// One client's worth of concurrent calls: a config, routes, calls and the host's behaviour.
#[derive(Debug)]
struct Scenario {
    cfg: Config,
    routes: Vec<(String, u32)>,
    /// Per call: its route subset is always all routes; its own idempotency; its start delay.
    calls: Vec<(bool, u64)>,
    start: u64,
    /// How badly the host's timers and clock behave.
    late_timers: bool,
    clock_jumps: bool,
    abandon_waits: bool,
    odd_rand: bool,
    /// Busy routes ask a shared bucket for their slots, which answers anything (or nothing).
    share_pacing: bool,
    seed: u64,
}

fn engine_input(r: &mut Rng, verbose: bool) -> u64 {
    let cfg = engine_config(r);
    let keys = ["a", "b", "c"];
    let routes = (0..r.range(1, 4))
        .map(|_| {
            let max = if r.chance(0.3) { cfg.max_attempts } else { r.range(1, 8) as u32 };
            (keys[r.below(3) as usize].to_string(), max) // keys may repeat: routes sharing a breaker
        })
        .collect();
    let calls = (0..r.range(1, 6)).map(|_| (r.chance(0.4), r.skewed(200))).collect();
    let start = match r.below(20) {
        0 => 0,
        1 => u64::MAX - r.below(1_000_000),
        _ => 1_700_000_000_000 + r.below(1_000_000_000),
    };
    let sc = Scenario {
        cfg,
        routes,
        calls,
        start,
        late_timers: r.chance(0.3),
        clock_jumps: r.chance(0.05),
        abandon_waits: r.chance(0.1),
        share_pacing: r.chance(0.3),
        odd_rand: r.chance(0.05),
        seed: r.u64(),
    };
    if verbose {
        eprintln!("{sc:#?}");
    }
    drive_engine(&sc, verbose)
}

/// Drives every call of `sc` to its end through one `Shared`, like the host does (a fake event
/// loop: the call whose timer or response is due next goes next), and checks the invariants.
/// All of the driver's use of the engine API is here. Returns the number of sessions.
fn drive_engine(sc: &Scenario, verbose: bool) -> u64 {
    use llm_retry::policy::engine::{Decision, Event, Outcome, Route, Session, Shared, WaitCause};

    struct Call {
        session: Session,
        /// Virtual time at which it next runs; what it will then report.
        wake: u64,
        seen: Option<Observation>,
        deadline_at: Option<u128>,
        attempts: u32,
        per_route: Vec<u32>,
        route: usize,
        last_attempt: u32,
        decisions: u32,
        cooling_waits: u32,
        in_line_waits: u32,
        waited: u64,
        /// The hint the last observation carried, as the engine would read it.
        hint: Option<u64>,
        done: Option<Outcome>,
        finals: u32,
    }

    let mut r = Rng(sc.seed);
    let cfg = &sc.cfg;
    let mut shared = Shared::new(cfg);
    if sc.share_pacing {
        shared.share_pacing();
    }
    let routes: Vec<Route> = sc.routes.iter().map(|(k, m)| Route::new(k.clone(), *m)).collect();
    let total_max: u32 = sc.routes.iter().map(|(_, m)| *m).sum();
    let mut calls: Vec<Call> = sc
        .calls
        .iter()
        .map(|&(idempotent, delay)| Call {
            session: Session::new(cfg, routes.clone(), idempotent),
            wake: delay,
            seen: None,
            deadline_at: None,
            attempts: 0,
            per_route: vec![0; routes.len()],
            route: 0,
            last_attempt: 0,
            decisions: 0,
            cooling_waits: 0,
            in_line_waits: 0,
            waited: 0,
            hint: None,
            done: None,
            finals: 0,
        })
        .collect();
    let mut vt: u64 = 0; // virtual time since the scenario's start
    let mut skew: i64 = 0; // what the host's clock is off by (clock jumps)
    let mut hints_429 = 0u32; // 429s with a hint, from any call: each may cool a route for all
    let mut backward_jumps = 0u32; // each may stretch a route's cooling by one more wait
    let max_wait = cfg.backoff.max_ms.max(cfg.max_retry_after_ms);
    while let Some(i) = (0..calls.len()).filter(|&i| calls[i].done.is_none()).min_by_key(|&i| calls[i].wake) {
        vt = vt.max(calls[i].wake);
        // The host's clock jumps now and then (either way), but keeps advancing: a clock pinned
        // at 0 would never let a cooling wait end: the engine re-waits `cooled_until - now` for as
        // long as the clock stands still (found by this driver; not a bound on the engine's side).
        if sc.clock_jumps && sc.start >= 1_000_000_000_000 && sc.start < u64::MAX / 2 && r.chance(0.05) {
            let jump = r.range(0, 20_000) as i64 - 10_000;
            backward_jumps += u32::from(jump < 0);
            skew = skew.saturating_add(jump);
        }
        let now = (i128::from(sc.start) + i128::from(vt) + i128::from(skew)).clamp(0, i128::from(u64::MAX)) as u64;
        let rand = if sc.odd_rand && r.chance(0.2) {
            *r.pick(&[0.0, 1.0, -0.5, 2.0, f64::NAN, f64::INFINITY, 0.999_999_999_999])
        } else {
            r.f64()
        };
        let c = &mut calls[i];
        let seen = c.seen.take();
        // The hint the observation carries, read at the moment the engine reads it (an HTTP-date
        // or an RFC 3339 reset is relative to the host's clock then).
        if let Some(obs) = &seen {
            c.hint = match obs {
                Observation::Response { status, headers, .. } => hints::wait_hint(headers, *status, now).map(|h| h.ms),
                _ => None,
            };
            if matches!(obs, Observation::Response { status: 429, .. }) && c.hint.is_some() {
                hints_429 += 1;
            }
        }
        let decision = c.session.next(&mut shared, seen.as_ref(), now, rand);
        c.decisions += 1;
        let deadline_at = *c.deadline_at.get_or_insert(u128::from(now) + u128::from(cfg.deadline_ms));
        while let Some(e) = c.session.poll_event() {
            if matches!(e, Event::Success { .. } | Event::GiveUp { .. }) {
                c.finals += 1;
            }
            if matches!(e, Event::Fallback { .. }) {
                tally("event: fallback");
            }
            if matches!(e, Event::Breaker { .. }) {
                tally("event: breaker");
            }
            if matches!(e, Event::Skip { .. }) {
                tally("event: skip");
            }
        }
        if verbose {
            eprintln!("t+{vt} now {now} call {i}: {decision:?}");
        }
        let bound = 2 * total_max + routes.len() as u32 + 2;
        // A wait in line (an open breaker, a pacing slot) is bounded by time, not by attempts:
        // the clock moves on with each, and the deadline ends them.
        assert!(c.in_line_waits <= 100_000, "call {i}: {} waits in line", c.in_line_waits);
        assert!(
            c.decisions - c.cooling_waits - c.in_line_waits <= bound
                && c.cooling_waits <= hints_429 + backward_jumps + routes.len() as u32 + 1,
            "call {i}: {} decisions ({} cooling waits) with {total_max} attempts over {} routes",
            c.decisions,
            c.cooling_waits,
            routes.len()
        );
        match decision {
            Decision::Attempt { route, attempt, timeout_ms, deadline_ms, .. } => {
                // The host's timer: the attempt's own, or (a stream's first token) the deadline.
                assert!(
                    u128::from(now) + u128::from(deadline_ms) <= deadline_at,
                    "call {i}: deadline_ms is the time left"
                );
                if let Some(t) = timeout_ms {
                    assert!(u128::from(now) + u128::from(t) <= deadline_at || !cfg.deadline_cuts_attempts);
                }
                let timeout_ms = timeout_ms.unwrap_or(deadline_ms);
                c.attempts += 1;
                assert!(route < routes.len(), "route {route} of {}", routes.len());
                assert!(route >= c.route, "call {i}: went back from route {} to {route}", c.route);
                c.route = route;
                c.per_route[route] += 1;
                assert!(
                    c.per_route[route] <= routes[route].max_attempts,
                    "call {i}: attempt {} on route {route} (max {})",
                    c.per_route[route],
                    routes[route].max_attempts
                );
                assert!(c.attempts <= total_max, "call {i}: {} attempts, routes allow {total_max}", c.attempts);
                assert_eq!(attempt, c.last_attempt + 1, "attempts are numbered in order");
                c.last_attempt = attempt;
                assert!(u128::from(now) < deadline_at, "call {i}: an attempt at {now} past the deadline {deadline_at}");
                if let Some(t) = cfg.attempt_timeout_ms {
                    assert!(timeout_ms <= t, "call {i}: attempt timeout {timeout_ms} > attemptTimeoutMs {t}");
                }
                // What the host sees: its response after some latency, or its own timer.
                let latency = match r.below(10) {
                    0..=6 => r.range(0, 50),
                    7..=8 => r.range(0, 5_000),
                    _ => r.range(0, timeout_ms.saturating_mul(2).max(1)),
                };
                let (after, obs) = if latency >= timeout_ms {
                    (timeout_ms, Observation::Timeout)
                } else {
                    let obs = engine_observation(&mut r, now.saturating_add(latency));
                    (latency, obs)
                };
                c.seen = Some(obs);
                c.wake = vt.saturating_add(after);
            }
            Decision::Wait { ms, cause, .. } => {
                assert!(
                    u128::from(now) + u128::from(ms) < deadline_at,
                    "call {i}: a {ms} ms wait at {now} ends past the deadline {deadline_at}"
                );
                // Waits in line (an open breaker, a pacing slot) are bounded by the deadline alone.
                let in_line = matches!(cause, WaitCause::Breaker | WaitCause::Pacing);
                // A hint gets up to 10 % (1 s at most) of jitter on top.
                let jitter = if let WaitCause::Hint(_) = cause { (max_wait / 10).min(1_000) } else { 0 };
                assert!(
                    in_line || ms <= max_wait + jitter,
                    "call {i}: a {ms} ms {cause:?} wait, over max(backoff.maxMs, maxRetryAfterMs) = {max_wait}"
                );
                tally(match cause {
                    WaitCause::Backoff => "wait: backoff",
                    WaitCause::Cooling => "wait: cooling",
                    _ => "wait: hint",
                });
                match cause {
                    WaitCause::Cooling => c.cooling_waits += 1,
                    // In line, maybe for another route than the one the hint was about.
                    WaitCause::Breaker | WaitCause::Pacing => c.in_line_waits += 1,
                    _ => {
                        if let Some(h) = c.hint {
                            assert!(ms >= h, "call {i}: a {ms} ms wait ({cause:?}) undercuts the server's {h} ms hint");
                        }
                    }
                }
                c.waited = c.waited.saturating_add(ms);
                if sc.abandon_waits && r.chance(0.05) {
                    // The caller aborted during the wait: the host drops the session.
                    c.done = Some(Outcome::Aborted);
                    c.finals = 0;
                    continue;
                }
                let late = if sc.late_timers { r.skewed(2_000) } else { 0 };
                c.wake = vt.saturating_add(ms).saturating_add(late);
            }
            Decision::Slot { route, ask, .. } => {
                assert!(
                    route < routes.len() && ask.interval > 0.0 && ask.burst >= 1.0,
                    "call {i}: asked {ask:?} on {route}"
                );
                tally("ask: slot");
                c.in_line_waits += 1;
                // The bucket's slot: none, past, soon, late, absurd.
                let at = match r.below(6) {
                    0 => None,
                    1 => Some(now.saturating_sub(r.skewed(10_000))),
                    2 => Some(now.saturating_add(r.skewed(1_000))),
                    3 => Some(now.saturating_add(r.skewed(120_000))),
                    4 => Some(u64::MAX - r.below(3)),
                    _ => Some(r.below(u64::MAX)),
                };
                c.session.grant(at);
                c.wake = vt.saturating_add(r.skewed(20));
            }
            Decision::Done(outcome) => {
                c.done = Some(outcome);
                tally(match outcome {
                    Outcome::Success => "done: success",
                    Outcome::Returned(_) => "done: returned",
                    Outcome::Exhausted(_) => "done: exhausted",
                    Outcome::Aborted => "done: aborted",
                    Outcome::CircuitOpen { .. } => "done: circuit open",
                });
                assert_eq!(c.session.next(&mut shared, None, now, 0.5), Decision::Done(outcome), "Done is final");
                while let Some(e) = c.session.poll_event() {
                    assert!(!matches!(e, Event::Success { .. } | Event::GiveUp { .. }), "a second final event: {e:?}");
                }
                let report = c.session.report();
                assert_eq!(report.attempts.len() as u32, c.attempts, "the report lists every attempt");
                // The time actually waited: within the call's own span (the clock may jump back).
                let span = report.ended_ms.saturating_sub(report.started_ms);
                if backward_jumps == 0 {
                    assert!(report.total_wait_ms <= span, "waited {} in a {span} ms call", report.total_wait_ms);
                }
                assert_eq!(
                    report.served_by.is_some(),
                    outcome == Outcome::Success,
                    "served_by iff success: {outcome:?}"
                );
                let want_finals = u32::from(outcome != Outcome::Aborted);
                assert_eq!(c.finals, want_finals, "final events for {outcome:?}");
                if let Outcome::CircuitOpen { .. } = outcome {
                    assert_eq!(c.attempts, 0, "circuit open after attempts were sent");
                }
            }
        }
    }
    calls.len() as u64
}

// ---------------------------------------------------------------------------------------------
// The run.

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

struct Args {
    seed: u64,
    scale: f64,
    threads: usize,
    only: Option<String>,
    replay: Option<(String, u64)>,
}

fn args() -> Args {
    let mut a = Args {
        seed: 2026,
        scale: 1.0,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        only: None,
        replay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => a.seed = value().parse().expect("--seed N"),
            "--scale" => a.scale = value().parse().expect("--scale F"),
            "--threads" => a.threads = value().parse().expect("--threads N"),
            "--only" => a.only = Some(value()),
            "--replay" => {
                let v = value();
                let (t, i) = v.split_once(':').expect("--replay TARGET:INDEX");
                a.replay = Some((t.to_string(), i.parse().expect("--replay TARGET:INDEX")));
            }
            _ => panic!("unknown argument {flag} (see the module docs of examples/fuzz.rs)"),
        }
    }
    a
}

fn main() {
    let a = args();
    if let Some((name, index)) = &a.replay {
        let t = TARGETS.iter().position(|(n, ..)| n == name).expect("no such target");
        let mut r = Rng::for_input(a.seed, t, *index);
        (TARGETS[t].1)(&mut r, true);
        eprintln!("{name}:{index} (seed {}): no failure", a.seed);
        return;
    }
    // Panics are reported per input below, not printed as they happen.
    panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
    }));

    println!("make fuzz: seed {}, scale {}, {} threads", a.seed, a.scale, a.threads);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let mut total = 0u64;
    let mut panics_total = 0u64;
    for (t, (name, run, base)) in TARGETS.iter().enumerate() {
        if a.only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let n = (*base as f64 * a.scale).round() as u64;
        const CHUNK: u64 = 10_000;
        let next = AtomicU64::new(0);
        let counted = AtomicU64::new(0);
        let panics = AtomicUsize::new(0);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..a.threads.max(1) {
                s.spawn(|| loop {
                    let from = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if from >= n || failures.lock().unwrap().len() >= 20 {
                        break;
                    }
                    let mut local = 0u64;
                    for index in from..(from + CHUNK).min(n) {
                        let mut r = Rng::for_input(a.seed, t, index);
                        match panic::catch_unwind(AssertUnwindSafe(|| run(&mut r, false))) {
                            Ok(k) => local += k,
                            Err(_) => {
                                panics.fetch_add(1, Ordering::Relaxed);
                                let msg = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
                                let mut f = failures.lock().unwrap();
                                if f.len() < 20 {
                                    f.push(format!("{name}:{index}: {msg}"));
                                }
                            }
                        }
                    }
                    counted.fetch_add(local, Ordering::Relaxed);
                    flush_tally();
                });
            }
        });
        let (inputs, p) = (counted.load(Ordering::Relaxed), panics.load(Ordering::Relaxed));
        let extra = if *name == "engine" {
            format!(" sessions in {} scenarios", n.min(next.load(Ordering::Relaxed)))
        } else {
            String::new()
        };
        println!("  {name:<9} {inputs:>11} inputs{extra}, {p} panics, {:.1} s", t0.elapsed().as_secs_f64());
        let mut seen = std::mem::take(&mut *TALLY.lock().unwrap());
        seen.sort_by_key(|x| std::cmp::Reverse(x.1));
        let seen: Vec<String> = seen.iter().map(|(n, c)| format!("{n} {c}")).collect();
        println!("            {}", seen.join(", "));
        total += inputs;
        panics_total += p as u64;
    }
    let failures = failures.into_inner().unwrap();
    println!("  {:<9} {total:>11} inputs, {panics_total} panics, {:.1} s", "total", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        eprintln!("\nFAILED ({} shown; replay one with --seed {} --replay TARGET:INDEX):", failures.len(), a.seed);
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}
