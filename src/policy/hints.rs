//! Servers' wait hints: how long the server asked us to wait before trying again.
//!
//! A server that says when to come back knows better than any backoff formula: it can see its
//! own queue and the window of the rate limit we hit. Retrying earlier than it asked wastes an
//! attempt, and with many clients doing the same it deepens the very rate limit being waited
//! out. So when a response carries a usable hint, the engine honours it instead of guessing.
//!
//! [`wait_hint`] reads, in order of precedence:
//!
//! 1. `retry-after-ms`: a non-negative decimal number of milliseconds, rounded up.
//! 2. `Retry-After`: delta-seconds (a non-negative decimal is accepted leniently, rounded up to
//!    a whole millisecond) or an HTTP-date in any of the three forms of RFC 9110, measured from
//!    `now_ms`; a date in the past means "now" (0).
//! 3. Only for a 429, and only when neither of the above gave a value: the providers' rate-limit
//!    headers, OpenAI's first and Anthropic's only if OpenAI's gave nothing. Each limit is a
//!    pair of a `remaining` count and a `reset` (OpenAI: a Go duration such as `6m0s`;
//!    Anthropic: an RFC 3339 instant). If any limit's `remaining` is 0, the request can pass
//!    only once *all* exhausted limits have reset, so the hint is the longest reset among them
//!    (none if none of them has a usable reset: the other limits' resets say nothing about it).
//!    Otherwise it is the shortest usable reset given. Other statuses ignore these headers: they
//!    describe the account's budget, not the reason this request failed.
//!
//! A value is trimmed of ASCII whitespace (HTTP's is tab and space; a Unicode space is part of
//! the value). A header whose value does not parse contributes nothing. Negative numbers are
//! garbage for the delta forms. Huge values saturate at `u64::MAX`; capping a hint is the
//! caller's policy.
//!
//! Everything here is pure: time comes in as `now_ms`, milliseconds since the Unix epoch.

use super::config::MAX_MS;
use super::Headers;

/// Where a wait hint came from (for events and reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintSource {
    RetryAfterMs,
    RetryAfter,
    OpenAiReset,
    AnthropicReset,
}

impl HintSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryAfterMs => "retry-after-ms",
            Self::RetryAfter => "retry-after",
            Self::OpenAiReset => "x-ratelimit-reset",
            Self::AnthropicReset => "anthropic-ratelimit-reset",
        }
    }
}

/// A wait the server asked for, in milliseconds from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    pub ms: u64,
    pub source: HintSource,
}

/// Every header name this module reads, lowercase, so a host copies only these from a response.
pub const HEADER_NAMES: &[&str] = &[
    "retry-after-ms",
    "retry-after",
    "x-should-retry",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
];

/// OpenAI's limits as (remaining, reset) header pairs.
const OPENAI_LIMITS: [(&str, &str); 2] = [
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
];

/// Anthropic's limits as (remaining, reset) header pairs.
const ANTHROPIC_LIMITS: [(&str, &str); 4] = [
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
];

/// The server's requested wait before the next attempt, if it gave a usable one.
pub fn wait_hint(headers: &Headers, status: u16, now_ms: u64) -> Option<Hint> {
    let header = |name| headers.get(name).map(str::trim_ascii);
    let (ms, source) = if let Some(ms) = header("retry-after-ms").and_then(|v| decimal(v, 1)) {
        (ms, HintSource::RetryAfterMs)
    } else if let Some(ms) = header("retry-after").and_then(|v| retry_after(v, now_ms)) {
        (ms, HintSource::RetryAfter)
    } else if status != 429 {
        return None;
    } else if let Some(ms) = reset_hint(headers, &OPENAI_LIMITS, &duration) {
        (ms, HintSource::OpenAiReset)
    } else {
        let until = |v: &str| rfc3339(v).map(|at| ms_until(at, now_ms));
        let ms = reset_hint(headers, &ANTHROPIC_LIMITS, &until)?;
        (ms, HintSource::AnthropicReset)
    };
    Some(Hint { ms, source })
}

/// Longest reset among exhausted limits if any is exhausted, else the shortest reset given.
/// `reset` reads a reset's value (`dyn`: one copy of this for both families).
fn reset_hint(headers: &Headers, limits: &[(&str, &str)], reset: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
    // One pass: the longest reset among the exhausted (`None` < `Some`), the shortest of all.
    let (mut exhausted, mut longest, mut shortest) = (false, None, None);
    for &(remaining, reset_name) in limits {
        let r = headers.get(reset_name).and_then(reset);
        if headers.get(remaining).and_then(|v| decimal(v.trim_ascii(), 1)) == Some(0) {
            exhausted = true;
            longest = longest.max(r);
        }
        shortest = match (shortest, r) {
            (Some(a), Some(b)) => Some(u64::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    if exhausted {
        longest
    } else {
        shortest
    }
}

/// Milliseconds from `now_ms` until the instant `at_ms`; 0 if it has passed.
fn ms_until(at_ms: i64, now_ms: u64) -> u64 {
    let wait = i128::from(at_ms) - i128::from(now_ms);
    u64::try_from(wait.max(0)).unwrap_or(u64::MAX)
}

/// Where a provider's rate limits stand, from one response's headers (for pacing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// The request limit: its size, what is left of it, and the time until it is whole again
    /// (OpenAI's first, else Anthropic's).
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_ms: Option<u64>,
    /// When a token limit is spent: the longest time until one of those resets.
    pub tokens_spent_reset_ms: Option<u64>,
}

/// The rate-limit headers of a response, if it has any. A token limit's reset is read only when
/// that limit is spent, so a host may leave it out otherwise (`limitHeaders` in src/js/headers.js does).
pub fn limits(headers: &Headers, now_ms: u64) -> Option<Limits> {
    // A success from OpenAI or Anthropic has these read every time: the request limit's
    // `remaining`, which tells the family, is looked up once. (Only a response with token limits
    // alone has a token `remaining` looked up twice.)
    let number = |name| headers.get(name).and_then(|v| decimal(v.trim_ascii(), 1));
    let until = |v: &str| rfc3339(v).map(|at| ms_until(at, now_ms));
    let openai_remaining = number(OPENAI_LIMITS[0].0);
    let (limit, remaining, reset_ms, spent) = if openai_remaining.is_some() || number(OPENAI_LIMITS[1].0).is_some() {
        let reset = headers.get(OPENAI_LIMITS[0].1).and_then(duration);
        let spent = spent_reset(headers, &OPENAI_LIMITS[1..], &duration);
        (number("x-ratelimit-limit-requests"), openai_remaining, reset, spent)
    } else {
        let anthropic_remaining = headers.get(ANTHROPIC_LIMITS[0].0);
        if anthropic_remaining.is_none() && !ANTHROPIC_LIMITS[1..].iter().any(|(r, _)| headers.get(r).is_some()) {
            return None;
        }
        let reset = headers.get(ANTHROPIC_LIMITS[0].1).and_then(until);
        let spent = spent_reset(headers, &ANTHROPIC_LIMITS[1..], &until);
        let remaining = anthropic_remaining.and_then(|v| decimal(v.trim_ascii(), 1));
        (number("anthropic-ratelimit-requests-limit"), remaining, reset, spent)
    };
    // A reset past a day is no limit's (a daily one resets within it): a header gone wrong, read
    // as none rather than holding the route's sends for as long as it says.
    let sane = |ms: Option<u64>| ms.filter(|&ms| ms <= MAX_MS);
    Some(Limits { limit, remaining, reset_ms: sane(reset_ms), tokens_spent_reset_ms: sane(spent) })
}

/// The longest reset among the spent limits (`remaining` 0), if any is spent.
fn spent_reset(headers: &Headers, limits: &[(&str, &str)], reset: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
    let mut longest = None;
    for &(remaining, reset_name) in limits {
        if headers.get(remaining).and_then(|v| decimal(v.trim_ascii(), 1)) == Some(0) {
            longest = longest.max(headers.get(reset_name).and_then(reset));
        }
    }
    longest
}

/// `x-should-retry: true|false` (case-insensitive, trimmed); anything else → None.
pub fn should_retry(headers: &Headers) -> Option<bool> {
    let value = headers.get("x-should-retry")?.trim_ascii();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A `Retry-After` value: delta-seconds or an HTTP-date, as ms from `now_ms` (past → 0).
pub fn retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim_ascii();
    match decimal(value, 1_000) {
        Some(ms) => Some(ms),
        None => http_date(value).map(|at| at.saturating_sub(now_ms)),
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// An HTTP-date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", obsolete RFC 850 "Sunday,
/// 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994") as ms since the epoch.
///
/// Names are matched ignoring case and the weekday is not checked against the date. RFC 850's
/// two-digit years 70–99 are 19xx and 00–69 are 20xx. Dates before 1970 → None.
pub fn http_date(value: &str) -> Option<u64> {
    let value = value.trim_ascii();
    let (weekday, (day, month, year), time) = match split_once(value, b',') {
        Some((weekday, rest)) => {
            let (date, time, zone) = match fields(rest.split_ascii_whitespace()) {
                Some([day, month, year, time, zone]) => ((day, month, number(year, 4..=4)?), time, zone),
                None => {
                    let [date, time, zone] = fields(rest.split_ascii_whitespace())?;
                    (rfc850_date(date)?, time, zone)
                }
            };
            if !zone.eq_ignore_ascii_case("GMT") {
                return None;
            }
            (weekday, date, time)
        }
        None => {
            let [weekday, month, day, time, year] = fields(value.split_ascii_whitespace())?;
            (weekday, (day, month, number(year, 4..=4)?), time)
        }
    };
    let weekday = weekday.trim_ascii();
    let is_weekday = |name: &str| {
        weekday.eq_ignore_ascii_case(name) || name.get(..3).is_some_and(|short| weekday.eq_ignore_ascii_case(short))
    };
    if !WEEKDAYS.iter().any(|name| is_weekday(name)) {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?;
    let [hour, minute, second] = fields(split(time, b':'))?;
    let seconds = unix_seconds(
        year,
        u32::try_from(month).ok()? + 1,
        number(day, 1..=2)?,
        [number(hour, 1..=2)?, number(minute, 1..=2)?, number(second, 1..=2)?],
    )?;
    u64::try_from(seconds).ok()?.checked_mul(1_000)
}

/// RFC 850's `06-Nov-94` as (day, month, year), the year widened to four digits.
fn rfc850_date(date: &str) -> Option<(&str, &str, u32)> {
    let [day, month, year] = fields(split(date, b'-'))?;
    let year = match (year.len(), number(year, 2..=4)?) {
        (2, yy @ 70..) => 1900 + yy,
        (2, yy) => 2000 + yy,
        (4, yyyy) => yyyy,
        _ => return None,
    };
    Some((day, month, year))
}

/// A Go-style duration as OpenAI sends it ("20ms", "1s", "6m0s", "1h2m3.5s", "0.5s", "250us")
/// → ms, rounded UP to a whole ms.
///
/// As Go's `time.ParseDuration`: a sequence of decimal numbers each with a unit (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`), an optional leading `+`, and a bare `0`. Negative durations and
/// unitless numbers → None. Components are summed exactly to the nanosecond, then rounded up.
pub fn duration(value: &str) -> Option<u64> {
    let value = value.trim_ascii();
    let value = value.strip_prefix("+").unwrap_or(value);
    if value == "0" {
        return Some(0);
    }
    if value.is_empty() {
        return None;
    }
    let mut rest = value;
    let mut nanos: u64 = 0;
    while !rest.is_empty() {
        // By byte: a number's bytes are ASCII, so where one starts or ends is a char boundary.
        let is_number = |b: &u8| b.is_ascii_digit() || *b == b'.';
        let end = |s: &str, number: bool| s.bytes().position(|b| is_number(&b) != number).unwrap_or(s.len());
        // `split_at_checked`: the indices are boundaries, but the checked form keeps str
        // slicing's panic path (and its formatting) out of the wasm.
        let (num, after) = rest.split_at_checked(end(rest, true))?;
        let (unit, next) = after.split_at_checked(end(after, false))?;
        let unit_nanos = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        nanos = nanos.saturating_add(decimal(num, unit_nanos)?);
        rest = next;
    }
    // A sum that saturated (over 584 years) stays saturated.
    Some(if nanos == u64::MAX { u64::MAX } else { nanos.div_ceil(1_000_000) })
}

/// An RFC 3339 timestamp ("2024-05-01T12:00:30Z", "2024-05-01T12:00:30.5+02:00") → ms since
/// the epoch (i64; may be before 1970).
///
/// Accepts `T`, `t` or a space between date and time, `Z`, `z` or `±hh:mm` as the offset, and a
/// fraction of any length, rounded up to a whole ms so a reset is never reported early.
pub fn rfc3339(value: &str) -> Option<i64> {
    let value = value.trim_ascii();
    let (date, time) = (value.get(..10)?, value.get(11..)?);
    if !matches!(value.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let [year, month, day] = fields(split(date, b'-'))?;
    let (clock, offset_seconds) = match time.strip_suffix("Z").or_else(|| time.strip_suffix("z")) {
        Some(clock) => (clock, 0),
        None => {
            let (clock, offset) = time.split_at_checked(time.len().checked_sub(6)?)?;
            let (sign, offset) = match offset.split_at_checked(1)? {
                ("+", offset) => (1, offset),
                ("-", offset) => (-1, offset),
                _ => return None,
            };
            let [hours, minutes] = fields(split(offset, b':'))?;
            let (hours, minutes) = (number(hours, 2..=2)?, number(minutes, 2..=2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            (clock, sign * i64::from(hours * 3_600 + minutes * 60))
        }
    };
    let (clock, fraction_ms) = match split_once(clock, b'.') {
        Some((clock, digits)) if !digits.is_empty() => (clock, fraction(digits, 1_000)?),
        Some(_) => return None,
        None => (clock, 0),
    };
    let [hour, minute, second] = fields(split(clock, b':'))?;
    let seconds = unix_seconds(
        number(year, 4..=4)?,
        number(month, 2..=2)?,
        number(day, 2..=2)?,
        [number(hour, 2..=2)?, number(minute, 2..=2)?, number(second, 2..=2)?],
    )?;
    let fraction_ms = i64::try_from(fraction_ms).ok()?;
    Some((seconds - offset_seconds) * 1_000 + fraction_ms)
}

/// `s` around its first `sep` (an ASCII byte), as `str::split_once` with a `char`. By byte: a
/// `char` pattern's searcher (its UTF-8 encoding, `memchr` over machine words) is ~1 KB of wasm
/// for fields of a few bytes.
fn split_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let (before, after) = s.split_at_checked(s.bytes().position(|b| b == sep)?)?;
    Some((before, after.get(1..)?))
}

/// The parts of `s` between its `sep` bytes (ASCII), as `str::split` with a `char`.
fn split(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    core::iter::from_fn(move || {
        let r = rest?;
        rest = split_once(r, sep).map(|(_, after)| after);
        Some(split_once(r, sep).map_or(r, |(part, _)| part))
    })
}

/// Exactly `N` items from `items`, or None if there are more or fewer.
fn fields<'a, const N: usize>(mut items: impl Iterator<Item = &'a str>) -> Option<[&'a str; N]> {
    let mut out = [""; N];
    for slot in &mut out {
        *slot = items.next()?;
    }
    items.next().is_none().then_some(out)
}

/// A small unsigned decimal of `len` ASCII digits (at most 4, so it fits any date field).
fn number(s: &str, len: core::ops::RangeInclusive<usize>) -> Option<u32> {
    if !len.contains(&s.len()) || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}

/// Seconds since the epoch of a validated UTC civil date and `[hour, minute, second]`
/// (second 60, a leap second, is accepted and counts as the next minute's first).
fn unix_seconds(year: u32, month: u32, day: u32, [hour, minute, second]: [u32; 3]) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let time = i64::from(hour * 3_600 + minute * 60 + second);
    Some(days_from_civil(i64::from(year), i64::from(month), i64::from(day)) * 86_400 + time)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `digits[.digits]` (at least one digit, no sign) times `unit`, rounded up; saturates.
fn decimal(s: &str, unit: u64) -> Option<u64> {
    let (whole, frac) = split_once(s, b'.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `saturating_mul(10)` per digit, without the 128-bit multiply that checking a 64-bit product
    // costs on wasm32 (a call to `__multi3` for each digit).
    let whole = whole.bytes().fold(0u64, |n, b| {
        if n > u64::MAX / 10 {
            u64::MAX
        } else {
            (n * 10).saturating_add(u64::from(b - b'0'))
        }
    });
    Some(whole.saturating_mul(unit).saturating_add(fraction(frac, unit)?))
}

/// `0.digits` times `unit` (at most 10^17), rounded up: exact for any number of digits, by long
/// multiplication from the last digit (what carries into the units is the product's whole part;
/// any nonzero digit left behind rounds it up).
fn fraction(digits: &str, unit: u64) -> Option<u64> {
    let (mut carry, mut rest) = (0u64, false);
    for b in digits.bytes().rev() {
        if !b.is_ascii_digit() {
            return None;
        }
        let v = u64::from(b - b'0') * unit + carry;
        rest |= v % 10 != 0;
        carry = v / 10;
    }
    Some(carry + u64::from(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_714_564_800_000; // 2024-05-01T12:00:00Z

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    fn hint(pairs: &[(&str, &str)], status: u16) -> Option<Hint> {
        wait_hint(&headers(pairs), status, NOW)
    }

    #[test]
    fn rate_limits_are_read_from_either_family_and_token_limits_alone() {
        let at = |pairs: &[(&str, &str)]| limits(&headers(pairs), NOW);
        let want = |limit, remaining, reset_ms, spent| {
            Some(Limits {
                limit: Some(limit),
                remaining: Some(remaining),
                reset_ms: Some(reset_ms),
                tokens_spent_reset_ms: spent,
            })
        };
        let openai = at(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-reset-requests", "1m0s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "250ms"),
        ]);
        assert_eq!(openai, want(60, 12, 60_000, Some(250)));
        let anthropic = at(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", " 7 "),
            ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:30Z"),
            ("anthropic-ratelimit-output-tokens-remaining", "0"),
            ("anthropic-ratelimit-output-tokens-reset", "2024-05-01T12:00:02Z"),
        ]);
        assert_eq!(anthropic, want(50, 7, 30_000, Some(2_000)));
        // Token limits alone: the family is found, no request limit to pace by.
        let tokens = at(&[
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2024-05-01T12:00:01Z"),
        ]);
        assert_eq!(tokens, Some(Limits { tokens_spent_reset_ms: Some(1_000), ..Limits::default() }));
        let tokens = at(&[("x-ratelimit-remaining-tokens", "5"), ("x-ratelimit-reset-tokens", "1s")]);
        assert_eq!(tokens, Some(Limits::default()));
        assert_eq!(at(&[("retry-after", "1"), ("x-ratelimit-reset-requests", "1s")]), None);
        // A reset past a day is read as none; a day is kept.
        let spent = |reset| at(&[("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", reset)]);
        assert_eq!(spent("99999999999h"), Some(Limits::default()));
        assert_eq!(spent("24h0m1s"), Some(Limits::default()));
        assert_eq!(spent("24h"), Some(Limits { tokens_spent_reset_ms: Some(MAX_MS), ..Limits::default() }));
        let anthropic = at(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "9999-01-01T00:00:00Z"),
        ]);
        assert_eq!(anthropic, Some(Limits { remaining: Some(0), ..Limits::default() }));
    }

    #[test]
    fn a_decimal_is_exact_up_to_u64_max_and_saturates_past_it() {
        for (text, ms) in [
            ("18446744073709551615", u64::MAX),
            ("18446744073709551614", u64::MAX - 1),
            ("18446744073709551610.2", u64::MAX - 4),
            ("18446744073709551616", u64::MAX),
            ("184467440737095516150", u64::MAX),
            ("1844674407370955161", 1_844_674_407_370_955_161),
        ] {
            assert_eq!(decimal(text, 1), Some(ms), "{text}");
        }
    }

    #[test]
    fn retry_after_delta_seconds() {
        assert_eq!(retry_after("120", NOW), Some(120_000));
        assert_eq!(retry_after(" 0 ", NOW), Some(0));
        assert_eq!(retry_after("1.5", NOW), Some(1_500));
        assert_eq!(retry_after("0.0001", NOW), Some(1));
        assert_eq!(retry_after("99999999999999999999999", NOW), Some(u64::MAX));
        for garbage in ["-5", "+5", "", " ", ".", "5s", "1e3", "abc", "1.2.3", "5 5"] {
            assert_eq!(retry_after(garbage, NOW), None, "{garbage:?}");
        }
        // Whitespace is HTTP's (tab and space; ASCII's other kinds too), not Unicode's: a
        // no-break space is part of the value, which is then not a number.
        assert_eq!(retry_after("\t7\r\n", NOW), Some(7_000));
        assert_eq!(retry_after("\u{a0}7", NOW), None);
        assert_eq!(duration("\u{2003}1s"), None);
    }

    #[test]
    fn retry_after_http_dates() {
        // RFC 9110's examples, all the same instant.
        let rfc = 784_111_777_000;
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(rfc));
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(rfc));
        assert_eq!(http_date("Sun Nov  6 08:49:37 1994"), Some(rfc));
        assert_eq!(http_date("  sun, 06 NOV 1994 08:49:37 gmt "), Some(rfc));
        assert_eq!(http_date("Fri, 31 Dec 1999 23:59:59 GMT"), Some(946_684_799_000));
        assert_eq!(http_date("Thursday, 01-Jan-70 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Saturday, 01-Jan-00 00:00:00 GMT"), Some(946_684_800_000));
        assert_eq!(http_date("Tue, 29 Feb 2000 00:00:00 GMT"), Some(951_782_400_000));
        assert_eq!(http_date("Fri, 31 Dec 9999 23:59:59 GMT"), Some(253_402_300_799_000));

        let in_30s = "Wed, 01 May 2024 12:00:30 GMT";
        assert_eq!(retry_after(in_30s, NOW), Some(30_000));
        assert_eq!(retry_after("Wed May  1 12:00:30 2024", NOW), Some(30_000));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOW), Some(0));
    }

    #[test]
    fn http_date_rejects_garbage() {
        for garbage in [
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Jan 1994 08:49:37 GMT",
            "Mon, 29 Feb 2100 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Fun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-194 08:49:37 GMT",
            "Sun Nov  6 08:49:37",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Sun, -6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(http_date(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_ms() {
        assert_eq!(hint(&[("retry-after-ms", "1500")], 503).map(|h| h.ms), Some(1_500));
        assert_eq!(hint(&[("retry-after-ms", "0.2")], 503).map(|h| h.ms), Some(1));
        assert_eq!(hint(&[("Retry-After-Ms", " 0 ")], 503).map(|h| h.ms), Some(0));
        assert_eq!(hint(&[("retry-after-ms", "-1")], 503), None);
        assert_eq!(hint(&[("retry-after-ms", "soon")], 503), None);
    }

    #[test]
    fn precedence() {
        let all = [
            ("x-ratelimit-reset-requests", "7s"),
            ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:09Z"),
            ("retry-after", "3"),
            ("retry-after-ms", "1500"),
        ];
        let ms = |ms| Some(Hint { ms, source: HintSource::RetryAfterMs });
        let ra = |ms| Some(Hint { ms, source: HintSource::RetryAfter });
        let openai = |ms| Some(Hint { ms, source: HintSource::OpenAiReset });
        let anthropic = |ms| Some(Hint { ms, source: HintSource::AnthropicReset });
        assert_eq!(hint(&all, 429), ms(1_500));
        assert_eq!(hint(&all[..3], 429), ra(3_000));
        assert_eq!(hint(&all[..2], 429), openai(7_000));
        assert_eq!(hint(&all[1..2], 429), anthropic(9_000));
        // Garbage in a higher-precedence header falls through to the next.
        let garbled = [("retry-after-ms", "x"), ("retry-after", "later"), all[0]];
        assert_eq!(hint(&garbled, 429), openai(7_000));
        assert_eq!(hint(&[], 429), None);
    }

    #[test]
    fn resets_only_on_429() {
        let resets =
            [("x-ratelimit-reset-requests", "7s"), ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:09Z")];
        assert_eq!(hint(&resets, 503), None);
        assert_eq!(hint(&resets, 200), None);
        assert_eq!(hint(&[("retry-after", "3")], 503).map(|h| h.ms), Some(3_000));
    }

    #[test]
    fn openai_exhausted_vs_shortest() {
        let both = [("x-ratelimit-reset-requests", "1s"), ("x-ratelimit-reset-tokens", "6m0s")];
        assert_eq!(hint(&both, 429).map(|h| h.ms), Some(1_000));
        let none_exhausted =
            [both[0], both[1], ("x-ratelimit-remaining-requests", "5"), ("x-ratelimit-remaining-tokens", "10")];
        assert_eq!(hint(&none_exhausted, 429).map(|h| h.ms), Some(1_000));
        let tokens_out = [both[0], both[1], ("x-ratelimit-remaining-tokens", "0")];
        assert_eq!(hint(&tokens_out, 429).map(|h| h.ms), Some(360_000));
        let requests_out = [both[0], both[1], ("x-ratelimit-remaining-requests", "0")];
        assert_eq!(hint(&requests_out, 429).map(|h| h.ms), Some(1_000));
        let both_out = [requests_out[2], tokens_out[2], both[0], both[1]];
        assert_eq!(hint(&both_out, 429).map(|h| h.ms), Some(360_000));
        // An exhausted limit without a usable reset: the other resets don't apply to it.
        let unknown = [("x-ratelimit-remaining-tokens", "0"), both[0], ("x-ratelimit-reset-tokens", "?")];
        assert_eq!(hint(&unknown, 429), None);
        // Garbage resets are skipped.
        let garbled = [("x-ratelimit-reset-requests", "soon"), both[1]];
        assert_eq!(hint(&garbled, 429).map(|h| h.ms), Some(360_000));
    }

    #[test]
    fn anthropic_exhausted_vs_shortest() {
        let resets = [
            ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:05Z"),
            ("anthropic-ratelimit-tokens-reset", "2024-05-01T12:01:00Z"),
            ("anthropic-ratelimit-input-tokens-reset", "2024-05-01T12:00:20.25Z"),
            ("anthropic-ratelimit-output-tokens-reset", "2024-05-01T11:59:00Z"),
        ];
        let source = hint(&resets, 429).map(|h| h.source);
        assert_eq!(source, Some(HintSource::AnthropicReset));
        // Shortest, and a reset in the past means now.
        assert_eq!(hint(&resets, 429).map(|h| h.ms), Some(0));
        assert_eq!(hint(&resets[..3], 429).map(|h| h.ms), Some(5_000));
        let input_out = [resets[0], resets[1], resets[2], ("anthropic-ratelimit-input-tokens-remaining", "0")];
        assert_eq!(hint(&input_out, 429).map(|h| h.ms), Some(20_250));
        let two_out = [
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-input-tokens-remaining", "100"),
            resets[0],
            resets[1],
            resets[2],
        ];
        assert_eq!(hint(&two_out, 429).map(|h| h.ms), Some(60_000));
        // OpenAI's headers win when both providers' are present.
        let mixed = [resets[1], ("x-ratelimit-reset-tokens", "2s")];
        assert_eq!(hint(&mixed, 429), Some(Hint { ms: 2_000, source: HintSource::OpenAiReset }));
    }

    #[test]
    fn durations() {
        let cases = [
            ("20ms", Some(20)),
            ("1s", Some(1_000)),
            ("6m0s", Some(360_000)),
            ("1h2m3.5s", Some(3_723_500)),
            ("0.5s", Some(500)),
            ("1.2ms", Some(2)),
            ("250us", Some(1)),
            ("250µs", Some(1)),
            ("999999ns", Some(1)),
            ("1000000ns", Some(1)),
            ("1000001ns", Some(2)),
            ("500us500us", Some(1)),
            (".5s", Some(500)),
            ("+1s", Some(1_000)),
            ("0", Some(0)),
            ("0s", Some(0)),
            (" 2s ", Some(2_000)),
            ("1.5m", Some(90_000)),
            // Exact however many digits, for units that do not divide a power of ten too:
            // 0.333…(24 digits) minutes is 19.99…98 s, so 20 000 ms, not 20 001.
            ("0.333333333333333333333333m", Some(20_000)),
            ("0.0000000000000000000000001h", Some(1)),
            ("0.1h", Some(360_000)),
            ("99999999999999999999h", Some(u64::MAX)),
            ("584y", None),
            ("600000h", Some(2_160_000_000_000)),
            ("abc", None),
            ("", None),
            ("5", None),
            ("-1s", None),
            ("1x", None),
            ("1S", None),
            ("s", None),
            (".s", None),
            ("1.2.3s", None),
            ("1s 2ms", None),
        ];
        for (input, want) in cases {
            assert_eq!(duration(input), want, "{input:?}");
        }
    }

    #[test]
    fn rfc3339_instants() {
        let base = 1_714_564_830_000; // 2024-05-01T12:00:30Z
        assert_eq!(rfc3339("2024-05-01T12:00:30Z"), Some(base));
        assert_eq!(rfc3339("2024-05-01t12:00:30z"), Some(base));
        assert_eq!(rfc3339("2024-05-01 12:00:30+00:00"), Some(base));
        assert_eq!(rfc3339("2024-05-01T12:00:30.5+02:00"), Some(base - 7_200_000 + 500));
        assert_eq!(rfc3339("2024-05-01T12:00:30-05:30"), Some(base + 19_800_000));
        assert_eq!(rfc3339("2024-05-01T12:00:30.123456789Z"), Some(base + 124));
        assert_eq!(rfc3339("2024-05-01T12:00:30.000Z"), Some(base));
        assert_eq!(rfc3339("1969-12-31T23:59:59Z"), Some(-1_000));
        assert_eq!(rfc3339("0001-01-01T00:00:00Z"), Some(-62_135_596_800_000));
        for garbage in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:30",
            "2024-05-01X12:00:30Z",
            "2024-13-01T12:00:30Z",
            "2024-02-30T12:00:30Z",
            "2024-05-01T12:00:30.Z",
            "2024-05-01T12:00:30+2:00",
            "2024-05-01T12:00:30+24:00",
            "2024-5-01T12:00:30Z",
            "24-05-01T12:00:30Z",
            "2024-05-01T12:00:30ZZ",
            "2024-05-01T12:00Z",
            "é024-05-01T12:00:30Z",
        ] {
            assert_eq!(rfc3339(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn should_retry_header() {
        let get = |v: &str| should_retry(&headers(&[("X-Should-Retry", v)]));
        assert_eq!(get("true"), Some(true));
        assert_eq!(get(" FALSE "), Some(false));
        assert_eq!(get("yes"), None);
        assert_eq!(get(""), None);
        assert_eq!(should_retry(&Headers::default()), None);
    }

    #[test]
    fn header_names_cover_every_read() {
        let read = OPENAI_LIMITS.iter().chain(&ANTHROPIC_LIMITS).flat_map(|&(a, b)| [a, b]);
        for name in read.chain(["retry-after-ms", "retry-after", "x-should-retry"]) {
            assert!(HEADER_NAMES.contains(&name), "{name}");
        }
        assert!(HEADER_NAMES.iter().all(|n| n.bytes().all(|b| !b.is_ascii_uppercase())));
        assert_eq!(HintSource::OpenAiReset.as_str(), "x-ratelimit-reset");
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// Arbitrary text, text made of date and number characters, and plausible values.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            ".*",
            "[0-9a-zA-Z:\\- ,.+]*",
            "[0-9.]{0,30}(ns|us|ms|s|m|h)?([0-9.]{0,10}(ns|us|ms|s|m|h))?",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,25})?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
            any::<u64>().prop_map(|n| n.to_string()),
        ]
    }

    proptest! {
        #[test]
        fn parsers_survive_any_text(s in ".*", now in any::<u64>()) {
            let _ = (retry_after(&s, now), http_date(&s), duration(&s), rfc3339(&s));
        }

        #[test]
        fn parsers_survive_date_like_text(s in "[0-9a-zA-Z:\\- ,.+]*", now in any::<u64>()) {
            let _ = (retry_after(&s, now), http_date(&s), duration(&s), rfc3339(&s));
        }

        #[test]
        fn wait_hint_survives_any_headers(
            values in proptest::collection::vec(proptest::option::of(value()), HEADER_NAMES.len()),
            status in prop_oneof![Just(429u16), any::<u16>()],
            now in any::<u64>(),
        ) {
            let headers: Headers = HEADER_NAMES
                .iter()
                .zip(&values)
                .filter_map(|(name, value)| Some((*name, value.clone()?)))
                .collect();
            let _ = (wait_hint(&headers, status, now), should_retry(&headers));
        }

        #[test]
        fn delta_seconds_are_exact(n in 0..10_000_000u64, now in any::<u64>()) {
            prop_assert_eq!(retry_after(&n.to_string(), now), Some(n * 1_000));
        }
    }
}
