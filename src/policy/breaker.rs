//! A circuit breaker per route: stop sending to a provider that is down.
//!
//! # Why
//! Retries help with blips; they hurt during an outage. When a provider fails every request,
//! each caller still spends its whole retry schedule on it — minutes of waiting per call, and a
//! multiple of the normal load on a service that is trying to recover. The breaker notices the
//! pattern across calls and short-circuits: while it is open, the route is skipped without a
//! request, so calls move to a fallback (or fail fast) at once.
//!
//! # When it opens
//! - **Closed** → **Open** after `failure_threshold` consecutive failed attempts (server
//!   errors, network errors, timeouts and route failures such as an exhausted quota; a caller's
//!   own 4xx is not the provider's fault and counts as a success). Any success resets the count.
//!   A rate limit (429) is neither: the provider is up and asked for a pause.
//! - **Open** → **HalfOpen** once the cooldown has passed: exactly one probe attempt is admitted.
//! - The probe's success closes the breaker; its failure re-opens it for twice the cooldown, up
//!   to `max_cooldown_ms` (Envoy's ejection time, which grows only with repeated ejection). If the
//!   probe never reports (its caller went away), another probe is admitted after a cooldown.
//!
//! # Why the cooldown is short
//! An open breaker no longer fails calls: they wait in line for the route (see the engine), so
//! what the cooldown costs is the time from the provider's recovery to the first call served.
//! A probe is one request; one every 0.75 s is nothing to a provider that serves thousands, and
//! it finds a recovery within that, where a fixed 30 s cooldown made every waiting caller
//! wait out the rest of it.
//!
//! Separately, a 429 with a wait hint *cools* the route until the hinted time (as LiteLLM does):
//! no attempt is admitted before then, whatever the state.
//!
//! # Default
//! `failure_threshold` 5, `cooldown_ms` 250, `max_cooldown_ms` 750: a recovery is found within 0.75 s (and a round trip).

use super::health::Record;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    /// The first cooldown, doubled after each failed probe.
    pub cooldown_ms: u64,
    /// The longest cooldown.
    pub max_cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, cooldown_ms: 250, max_cooldown_ms: 750 }
    }
}

/// In this order: the wasm layer hands a state to `report.js` as its index (`STATES` there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "closed" => Self::Closed,
            "open" => Self::Open,
            "half-open" => Self::HalfOpen,
            _ => return None,
        })
    }
}

/// Why an attempt was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Open, or half-open with its probe out: the route is unhealthy.
    Open,
    /// A server wait hint is in force: the route is healthy but asked for a pause.
    Cooling,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    No { retry_in_ms: u64, why: Refusal },
}

/// The breaker's state as plain data, to persist it (e.g. in a Worker's KV) and restore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    pub failures: u32,
    /// When an open breaker admits its probe (ms since the epoch); 0 when not open.
    pub open_until_ms: u64,
    /// When a server's wait hint expires (ms since the epoch); 0 when none.
    pub cooled_until_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: State,
    failures: u32,
    open_until_ms: u64,
    /// While half-open: when the probe was admitted, if one is out.
    probe_since_ms: Option<u64>,
    cooled_until_ms: u64,
    /// Failed probes since the breaker last closed: each doubles the cooldown.
    probes_failed: u32,
    /// When it last opened and last closed (ms since the epoch; 0: never), for [`Self::record`].
    opened_at_ms: u64,
    closed_at_ms: u64,
}

/// A state change, for events.
pub type Transition = (State, State);

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            state: State::Closed,
            failures: 0,
            open_until_ms: 0,
            probe_since_ms: None,
            cooled_until_ms: 0,
            probes_failed: 0,
            opened_at_ms: 0,
            closed_at_ms: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether this breaker counts nothing a new one would not from `now` on: closed, no
    /// failures, no pause in force. (What it last told other instances is its holder's to weigh.)
    pub fn at_rest(&self, now_ms: u64) -> bool {
        self.state == State::Closed && self.failures == 0 && self.cooled_until_ms <= now_ms
    }

    /// The cooldown now: the first, doubled for each failed probe since the breaker opened.
    fn cooldown(&self) -> u64 {
        let grown = self.cfg.cooldown_ms.saturating_mul(1 << self.probes_failed.min(32));
        grown.min(self.cfg.max_cooldown_ms.max(self.cfg.cooldown_ms))
    }

    /// Could an attempt be sent now? Changes nothing.
    pub fn check(&self, now_ms: u64) -> Admit {
        let no = |until: u64, why| Admit::No { retry_in_ms: until - now_ms, why };
        if now_ms < self.cooled_until_ms {
            return no(self.cooled_until_ms, Refusal::Cooling);
        }
        match (self.state, self.probe_since_ms) {
            (State::Closed, _) => Admit::Yes,
            (State::Open, _) if now_ms < self.open_until_ms => no(self.open_until_ms, Refusal::Open),
            (State::HalfOpen, Some(since)) if now_ms < since.saturating_add(self.cooldown()) => {
                no(since.saturating_add(self.cooldown()), Refusal::Open)
            }
            _ => Admit::Yes,
        }
    }

    /// An attempt will be sent now (after [`Self::check`] said yes): a half-open breaker's
    /// probe is recorded.
    pub fn admit(&mut self, now_ms: u64) -> Option<Transition> {
        if self.state == State::Closed {
            return None;
        }
        self.probe_since_ms = Some(now_ms);
        self.set(State::HalfOpen)
    }

    pub fn record_success(&mut self, now_ms: u64) -> Option<Transition> {
        self.failures = 0;
        self.probes_failed = 0;
        self.probe_since_ms = None;
        let change = self.set(State::Closed);
        if change.is_some() {
            self.closed_at_ms = now_ms;
        }
        change
    }

    pub fn record_failure(&mut self, now_ms: u64) -> Option<Transition> {
        self.failures = self.failures.saturating_add(1);
        let trip = match self.state {
            State::Closed => self.failures >= self.cfg.failure_threshold,
            State::HalfOpen => true,
            State::Open => false,
        };
        if !trip {
            return None;
        }
        if self.state == State::HalfOpen {
            self.probes_failed = self.probes_failed.saturating_add(1);
        }
        self.open_until_ms = now_ms.saturating_add(self.cooldown());
        self.opened_at_ms = now_ms;
        self.probe_since_ms = None;
        self.set(State::Open)
    }

    /// The probe's caller went away without an answer: let the next caller probe.
    pub fn release_probe(&mut self) {
        self.probe_since_ms = None;
    }

    /// A server asked for a pause until `until_ms`: admit nothing before then.
    pub fn cool_until(&mut self, until_ms: u64) {
        self.cooled_until_ms = self.cooled_until_ms.max(until_ms);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            failures: self.failures,
            open_until_ms: if self.state == State::Open { self.open_until_ms } else { 0 },
            cooled_until_ms: self.cooled_until_ms,
        }
    }

    /// What this breaker tells other instances (see [`super::health`]).
    pub fn record(&self) -> Record {
        Record {
            opened_at: self.opened_at_ms,
            open_until: if self.opened_at_ms > 0 { self.open_until_ms } else { 0 },
            closed_at: self.closed_at_ms,
            cooled_until: self.cooled_until_ms,
        }
    }

    /// Adopts what other instances told (`shared`, merged with this breaker's own record): an
    /// opening later than this breaker's last change opens it until the shared `open_until`; a
    /// closing later than it closes it; a pause is kept. A probe of this instance's that is out
    /// (and not yet given up as lost) stays out.
    pub fn adopt(&mut self, shared: &Record, now_ms: u64) -> Option<Transition> {
        self.cool_until(shared.cooled_until);
        let last_change = self.opened_at_ms.max(self.closed_at_ms);
        if shared.opened_at > last_change {
            if let Some(until) = shared.open_until(now_ms) {
                self.opened_at_ms = shared.opened_at;
                self.open_until_ms = self.open_until_ms.max(until);
                // This instance's own probe, still live, stays out; a lost one is given up.
                let live = |since: u64| now_ms < since.saturating_add(self.cooldown());
                if self.state == State::HalfOpen && self.probe_since_ms.is_some_and(live) {
                    return None;
                }
                self.probe_since_ms = None;
                return self.set(State::Open);
            }
        }
        if shared.closed_at > last_change && self.state != State::Closed {
            self.closed_at_ms = shared.closed_at;
            self.failures = 0;
            self.probes_failed = 0;
            self.probe_since_ms = None;
            return self.set(State::Closed);
        }
        None
    }

    /// Restores a snapshot. A half-open breaker comes back without a probe out.
    pub fn restore(cfg: BreakerConfig, s: Snapshot) -> Self {
        Self {
            cfg,
            state: s.state,
            failures: s.failures,
            open_until_ms: s.open_until_ms,
            probe_since_ms: None,
            cooled_until_ms: s.cooled_until_ms,
            probes_failed: 0,
            opened_at_ms: 0,
            closed_at_ms: 0,
        }
    }

    fn set(&mut self, to: State) -> Option<Transition> {
        let from = core::mem::replace(&mut self.state, to);
        (from != to).then_some((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig { failure_threshold: 3, cooldown_ms: 1000, max_cooldown_ms: 1000 })
    }

    /// `check`, then `admit` when it says yes: how the engine asks.
    fn ask(b: &mut Breaker, now: u64) -> (Admit, Option<Transition>) {
        match b.check(now) {
            Admit::Yes => (Admit::Yes, b.admit(now)),
            no => (no, None),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let mut b = breaker();
        b.record_failure(0);
        b.record_failure(0);
        b.record_success(0);
        b.record_failure(0);
        b.record_failure(0);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.record_failure(10), Some((State::Closed, State::Open)));
        assert_eq!(ask(&mut b, 500).0, Admit::No { retry_in_ms: 510, why: Refusal::Open });
    }

    #[test]
    fn half_open_admits_one_probe() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        assert_eq!(ask(&mut b, 1000), (Admit::Yes, Some((State::Open, State::HalfOpen))));
        assert!(matches!(ask(&mut b, 1001).0, Admit::No { why: Refusal::Open, .. }));
        assert_eq!(b.record_success(1001), Some((State::HalfOpen, State::Closed)));
        assert_eq!(ask(&mut b, 1002).0, Admit::Yes);
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cooldown() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        ask(&mut b, 1000);
        assert_eq!(b.record_failure(1200), Some((State::HalfOpen, State::Open)));
        assert_eq!(ask(&mut b, 2199).0, Admit::No { retry_in_ms: 1, why: Refusal::Open });
        assert_eq!(ask(&mut b, 2200).0, Admit::Yes);
    }

    #[test]
    fn lost_probe_is_replaced_after_a_cooldown() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        ask(&mut b, 1000);
        assert!(matches!(ask(&mut b, 1999).0, Admit::No { .. }));
        assert_eq!(ask(&mut b, 2000).0, Admit::Yes);
        b.release_probe();
        assert_eq!(ask(&mut b, 2001).0, Admit::Yes);
    }

    #[test]
    fn cooling_holds_a_closed_route() {
        let mut b = breaker();
        b.cool_until(5000);
        assert_eq!(ask(&mut b, 4000).0, Admit::No { retry_in_ms: 1000, why: Refusal::Cooling });
        assert_eq!(ask(&mut b, 5000).0, Admit::Yes);
    }

    #[test]
    fn snapshot_round_trips() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(100);
        }
        b.cool_until(700);
        let s = b.snapshot();
        assert_eq!(s, Snapshot { state: State::Open, failures: 3, open_until_ms: 1100, cooled_until_ms: 700 });
        let mut r =
            Breaker::restore(BreakerConfig { failure_threshold: 3, cooldown_ms: 1000, max_cooldown_ms: 1000 }, s);
        assert!(matches!(ask(&mut r, 1099).0, Admit::No { .. }));
        assert_eq!(ask(&mut r, 1100).0, Admit::Yes);
    }

    #[test]
    fn an_adopted_opening_holds_unless_this_instances_probe_is_live() {
        let shared = |opened_at, open_until| Record { opened_at, open_until, closed_at: 0, cooled_until: 0 };
        // A live probe of its own (admitted 500 ms ago, cooldown 1000) stays out.
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        ask(&mut b, 1000);
        assert_eq!(b.adopt(&shared(1200, 5000), 1500), None);
        assert!(matches!(b.check(1500), Admit::No { why: Refusal::Open, .. }));
        // A lost one (admitted 1500 ms ago) is given up: the opening holds.
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        ask(&mut b, 1000);
        assert_eq!(b.adopt(&shared(2400, 5000), 2500), Some((State::HalfOpen, State::Open)));
        assert_eq!(b.check(2500), Admit::No { retry_in_ms: 2500, why: Refusal::Open });
        // A later closing closes it.
        let closed = Record { closed_at: 2600, ..shared(2400, 5000) };
        assert_eq!(b.adopt(&closed, 2700), Some((State::Open, State::Closed)));
        assert_eq!(b.check(2700), Admit::Yes);
    }

    #[test]
    fn the_cooldown_grows_only_while_probes_fail() {
        let mut b = Breaker::new(BreakerConfig { failure_threshold: 2, cooldown_ms: 250, max_cooldown_ms: 1000 });
        b.record_failure(0);
        b.record_failure(0);
        let mut probes = Vec::new();
        let mut now = 0;
        for _ in 0..5 {
            while ask(&mut b, now).0 != Admit::Yes {
                now += 1;
            }
            probes.push(now);
            b.record_failure(now);
        }
        assert_eq!(probes, [250, 750, 1750, 2750, 3750]);
        ask(&mut b, now + 1000);
        b.record_success(now + 1000);
        b.record_failure(10_000);
        b.record_failure(10_000);
        assert_eq!(b.check(10_000), Admit::No { retry_in_ms: 250, why: Refusal::Open }, "back to the first cooldown");
    }
}
