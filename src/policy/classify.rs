//! What one attempt's outcome means for the call: done, worth another try, worth another route,
//! or final.
//!
//! The worst retry policy treats every failure alike. A 429 says "slow down", a 503 says "try
//! again shortly", a 400 says "your request is wrong and will stay wrong", and a 429 whose body
//! says `insufficient_quota` says "no amount of waiting helps". A timed-out POST may already have
//! been processed (and billed), so it is sent again only when the request is idempotent.
//!
//! | observation                                   | class          | reason                   |
//! |-----------------------------------------------|----------------|--------------------------|
//! | status < 400                                  | `Success`      | `Ok`                     |
//! | `x-should-retry: false` on an error           | `Final`        | `ServerSaidNo`           |
//! | `x-should-retry: true` on an error            | `Transient`    | `ServerSaidRetry`        |
//! | 429 with `insufficient_quota` in the body     | `RouteFailure` | `InsufficientQuota`      |
//! | status in `retry_on` (default 408 409 429 500 502 503 504 529) | `Transient` | `RateLimited` (429) / `ServerError` / `RetryableStatus` |
//! | 401, 403                                      | `RouteFailure` | `Unauthorized`           |
//! | 404                                           | `RouteFailure` | `NotFound`               |
//! | any other status                              | `Final`        | `ClientError` / `ServerError` |
//! | network error                                 | `Transient`    | `NetworkError`           |
//! | attempt timeout, idempotent request           | `Transient`    | `Timeout`                |
//! | attempt timeout, otherwise                    | `Final`        | `TimeoutNotIdempotent`   |
//! | the caller aborted                            | `Abort`        | `Aborted`                |

use super::hints;
use super::Headers;
use alloc::string::String;

/// The default statuses worth retrying.
pub const DEFAULT_RETRY_ON: [u16; 8] = [408, 409, 429, 500, 502, 503, 504, 529];

/// What the host saw of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Response headers arrived. `body` is the start of the body, when the host read it
    /// (it needs to only for a 429, to tell a quota from a rate limit).
    Response { status: u16, headers: Headers, body: Option<String> },
    /// The transport failed before a response (DNS, refused, reset, CORS).
    NetworkError,
    /// The attempt's own timer fired before response headers arrived.
    Timeout,
    /// The caller's signal aborted.
    Aborted,
    /// A `200` event stream reached its first content event: the call is served.
    Committed { headers: Headers },
    /// A `200` event stream failed before its first content event, in a way `status` (its HTTP
    /// twin, see `policy::stream`) describes; `headers` are the stream's (wait hints).
    StreamFailed { status: u16, headers: Headers, body: Option<String> },
    /// A `200` event stream showed no content within `firstTokenTimeoutMs`.
    Stalled,
}

impl Observation {
    /// The HTTP status the server sent, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Response { status, .. } => Some(*status),
            Self::Committed { .. } | Self::StreamFailed { .. } | Self::Stalled => Some(200),
            _ => None,
        }
    }

    /// What the response says, as a status (a stream failure's HTTP twin), its headers and body.
    pub fn response(&self) -> Option<(u16, &Headers, Option<&str>)> {
        match self {
            Self::Response { status, headers, body } | Self::StreamFailed { status, headers, body } => {
                Some((*status, headers, body.as_deref()))
            }
            Self::Committed { headers } => Some((200, headers, None)),
            _ => None,
        }
    }

    /// Whether the attempt was a stream that failed before showing anything.
    pub fn in_stream(&self) -> bool {
        matches!(self, Self::StreamFailed { .. } | Self::Stalled)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The call is done: hand the response over.
    Success,
    /// Worth another attempt on the same route after a wait.
    Transient,
    /// This route cannot serve the request; another route might.
    RouteFailure,
    /// The caller's own failure (or the server said stop): no other attempt anywhere.
    Final,
    /// The caller gave up.
    Abort,
}

/// Why an attempt was classified as it was, or why a call stopped. Stable strings for events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Ok,
    RateLimited,
    ServerError,
    RetryableStatus,
    ServerSaidRetry,
    ServerSaidNo,
    InsufficientQuota,
    Unauthorized,
    NotFound,
    ClientError,
    NetworkError,
    Timeout,
    TimeoutNotIdempotent,
    Aborted,
    // Reasons the engine adds when it stops or moves on.
    AttemptsExhausted,
    HintTooLong,
    Deadline,
    BudgetExhausted,
    CircuitOpen,
    /// The route is cooling after a 429's wait hint.
    Cooling,
    /// The route's pacer had no slot in time.
    Pacing,
    /// A stream showed no content within `firstTokenTimeoutMs`.
    FirstTokenTimeout,
}

impl Reason {
    /// Every reason, in declaration order: `ALL[r as usize] == r` (the wasm layer hands reasons
    /// to JavaScript as these indexes).
    pub const ALL: [Reason; 22] = [
        Self::Ok,
        Self::RateLimited,
        Self::ServerError,
        Self::RetryableStatus,
        Self::ServerSaidRetry,
        Self::ServerSaidNo,
        Self::InsufficientQuota,
        Self::Unauthorized,
        Self::NotFound,
        Self::ClientError,
        Self::NetworkError,
        Self::Timeout,
        Self::TimeoutNotIdempotent,
        Self::Aborted,
        Self::AttemptsExhausted,
        Self::HintTooLong,
        Self::Deadline,
        Self::BudgetExhausted,
        Self::CircuitOpen,
        Self::Cooling,
        Self::Pacing,
        Self::FirstTokenTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RateLimited => "rate-limited",
            Self::ServerError => "server-error",
            Self::RetryableStatus => "retryable-status",
            Self::ServerSaidRetry => "server-said-retry",
            Self::ServerSaidNo => "server-said-no",
            Self::InsufficientQuota => "insufficient-quota",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not-found",
            Self::ClientError => "client-error",
            Self::NetworkError => "network-error",
            Self::Timeout => "timeout",
            Self::TimeoutNotIdempotent => "timeout-not-idempotent",
            Self::Aborted => "aborted",
            Self::AttemptsExhausted => "attempts-exhausted",
            Self::HintTooLong => "hint-too-long",
            Self::Deadline => "deadline",
            Self::BudgetExhausted => "budget-exhausted",
            Self::CircuitOpen => "circuit-open",
            Self::Cooling => "cooling",
            Self::Pacing => "pacing",
            Self::FirstTokenTimeout => "first-token-timeout",
        }
    }
}

/// A set of HTTP statuses (100–599) as a bitset: `Copy`, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusSet([u64; 8]);

impl StatusSet {
    pub const fn empty() -> Self {
        Self([0; 8])
    }

    /// Adds `status`; false when it is outside 100–599.
    pub fn insert(&mut self, status: u16) -> bool {
        if !(100..=599).contains(&status) {
            return false;
        }
        let i = (status - 100) as usize;
        self.0[i / 64] |= 1 << (i % 64);
        true
    }

    pub fn contains(&self, status: u16) -> bool {
        (100..=599).contains(&status) && {
            let i = (status - 100) as usize;
            self.0[i / 64] & (1 << (i % 64)) != 0
        }
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        let mut s = Self::empty();
        for code in DEFAULT_RETRY_ON {
            s.insert(code);
        }
        s
    }
}

/// Classifies one observation. `idempotent` says whether sending the request twice is safe.
pub fn classify(obs: &Observation, retry_on: &StatusSet, idempotent: bool) -> (Class, Reason) {
    match obs {
        Observation::Aborted => (Class::Abort, Reason::Aborted),
        Observation::NetworkError => (Class::Transient, Reason::NetworkError),
        Observation::Timeout if idempotent => (Class::Transient, Reason::Timeout),
        Observation::Timeout => (Class::Final, Reason::TimeoutNotIdempotent),
        // A stall before the first token: nothing was generated to be repeated.
        Observation::Stalled => (Class::Transient, Reason::FirstTokenTimeout),
        Observation::Response { status, headers, body } | Observation::StreamFailed { status, headers, body } => {
            classify_status(*status, headers, body.as_deref(), retry_on)
        }
        Observation::Committed { .. } => (Class::Success, Reason::Ok),
    }
}

fn classify_status(status: u16, headers: &Headers, body: Option<&str>, retry_on: &StatusSet) -> (Class, Reason) {
    if status < 400 {
        return (Class::Success, Reason::Ok);
    }
    if status == 429 && body.is_some_and(is_quota_exhausted) {
        return (Class::RouteFailure, Reason::InsufficientQuota);
    }
    match hints::should_retry(headers) {
        Some(false) => return (Class::Final, Reason::ServerSaidNo),
        Some(true) => return (Class::Transient, Reason::ServerSaidRetry),
        None => {}
    }
    if retry_on.contains(status) {
        let reason = match status {
            429 => Reason::RateLimited,
            500..=599 => Reason::ServerError,
            _ => Reason::RetryableStatus,
        };
        return (Class::Transient, reason);
    }
    match status {
        401 | 403 => (Class::RouteFailure, Reason::Unauthorized),
        404 => (Class::RouteFailure, Reason::NotFound),
        500.. => (Class::Final, Reason::ServerError),
        _ => (Class::Final, Reason::ClientError),
    }
}

/// OpenAI's quota error: `{"error":{"code":"insufficient_quota","type":"insufficient_quota",…}}`.
/// Matched as the quoted JSON string, so a message merely mentioning quotas does not count.
fn is_quota_exhausted(body: &str) -> bool {
    // A plain window scan: `str::contains` pulls a two-way searcher into the wasm for one call.
    body.as_bytes().windows(QUOTA.len()).any(|w| w == QUOTA)
}

const QUOTA: &[u8] = b"\"insufficient_quota\"";

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: Option<&str>) -> Observation {
        Observation::Response { status, headers: headers.iter().copied().collect(), body: body.map(str::to_owned) }
    }

    #[test]
    fn all_reasons_by_index() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.as_str());
        }
        // A reason added later must be added to ALL too: the last one is last.
        assert_eq!(Reason::ALL.len(), Reason::FirstTokenTimeout as usize + 1);
    }

    fn class_of(o: &Observation) -> (Class, Reason) {
        classify(o, &StatusSet::default(), false)
    }

    #[test]
    fn statuses() {
        use Class::*;
        for (status, expected) in [
            (200, (Success, Reason::Ok)),
            (304, (Success, Reason::Ok)),
            (408, (Transient, Reason::RetryableStatus)),
            (409, (Transient, Reason::RetryableStatus)),
            (429, (Transient, Reason::RateLimited)),
            (500, (Transient, Reason::ServerError)),
            (502, (Transient, Reason::ServerError)),
            (503, (Transient, Reason::ServerError)),
            (504, (Transient, Reason::ServerError)),
            (529, (Transient, Reason::ServerError)),
            (400, (Final, Reason::ClientError)),
            (401, (RouteFailure, Reason::Unauthorized)),
            (403, (RouteFailure, Reason::Unauthorized)),
            (404, (RouteFailure, Reason::NotFound)),
            (413, (Final, Reason::ClientError)),
            (422, (Final, Reason::ClientError)),
            (501, (Final, Reason::ServerError)),
        ] {
            assert_eq!(class_of(&resp(status, &[], None)), expected, "status {status}");
        }
    }

    #[test]
    fn quota_is_not_a_rate_limit() {
        let body = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(class_of(&resp(429, &[], Some(body))), (Class::RouteFailure, Reason::InsufficientQuota));
        let rate = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(class_of(&resp(429, &[], Some(rate))).0, Class::Transient);
        // Even a server that says "retry" cannot refill a quota.
        assert_eq!(class_of(&resp(429, &[("x-should-retry", "true")], Some(body))).0, Class::RouteFailure);
    }

    #[test]
    fn should_retry_header_overrides_status() {
        assert_eq!(class_of(&resp(503, &[("X-Should-Retry", "false")], None)), (Class::Final, Reason::ServerSaidNo));
        assert_eq!(
            class_of(&resp(400, &[("x-should-retry", "true")], None)),
            (Class::Transient, Reason::ServerSaidRetry)
        );
        assert_eq!(class_of(&resp(200, &[("x-should-retry", "true")], None)).0, Class::Success);
    }

    #[test]
    fn timeouts_follow_idempotency() {
        let set = StatusSet::default();
        assert_eq!(classify(&Observation::Timeout, &set, true), (Class::Transient, Reason::Timeout));
        assert_eq!(classify(&Observation::Timeout, &set, false), (Class::Final, Reason::TimeoutNotIdempotent));
        assert_eq!(classify(&Observation::NetworkError, &set, false).0, Class::Transient);
        assert_eq!(classify(&Observation::Aborted, &set, true).0, Class::Abort);
    }

    #[test]
    fn custom_retry_on() {
        let mut set = StatusSet::empty();
        assert!(set.insert(418));
        assert!(!set.insert(99) && !set.insert(600));
        assert_eq!(classify(&resp(418, &[], None), &set, false).0, Class::Transient);
        assert_eq!(classify(&resp(503, &[], None), &set, false).0, Class::Final);
    }
}
