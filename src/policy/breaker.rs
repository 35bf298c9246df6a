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
//! - **Open** → **HalfOpen** once `cooldown_ms` has passed: exactly one probe attempt is admitted.
//! - The probe's success closes the breaker; its failure re-opens it for another cooldown. If the
//!   probe never reports (its caller went away), another probe is admitted after a cooldown.
//!
//! Separately, a 429 with a wait hint *cools* the route until the hinted time (as LiteLLM does):
//! no attempt is admitted before then, whatever the state.
//!
//! # Default
//! `failure_threshold` 5, `cooldown_ms` 30 000 (the seeds' "skip unhealthy providers for 30 s").

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, cooldown_ms: 30_000 }
    }
}

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
}

/// A state change, for events.
pub type Transition = (State, State);

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self { cfg, state: State::Closed, failures: 0, open_until_ms: 0, probe_since_ms: None, cooled_until_ms: 0 }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// May an attempt be sent now? Admitting the half-open probe is recorded, so call this only
    /// when the attempt will be sent.
    pub fn admit(&mut self, now_ms: u64) -> (Admit, Option<Transition>) {
        if now_ms < self.cooled_until_ms {
            let retry_in_ms = self.cooled_until_ms - now_ms;
            return (Admit::No { retry_in_ms, why: Refusal::Cooling }, None);
        }
        match self.state {
            State::Closed => (Admit::Yes, None),
            State::Open if now_ms < self.open_until_ms => {
                (Admit::No { retry_in_ms: self.open_until_ms - now_ms, why: Refusal::Open }, None)
            }
            State::Open => {
                self.probe_since_ms = Some(now_ms);
                (Admit::Yes, self.set(State::HalfOpen))
            }
            State::HalfOpen => match self.probe_since_ms {
                Some(since) if now_ms < since.saturating_add(self.cfg.cooldown_ms) => {
                    let retry_in_ms = since.saturating_add(self.cfg.cooldown_ms) - now_ms;
                    (Admit::No { retry_in_ms, why: Refusal::Open }, None)
                }
                _ => {
                    self.probe_since_ms = Some(now_ms);
                    (Admit::Yes, None)
                }
            },
        }
    }

    pub fn record_success(&mut self) -> Option<Transition> {
        self.failures = 0;
        self.probe_since_ms = None;
        self.set(State::Closed)
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
        self.open_until_ms = now_ms.saturating_add(self.cfg.cooldown_ms);
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

    /// Restores a snapshot. A half-open breaker comes back without a probe out.
    pub fn restore(cfg: BreakerConfig, s: Snapshot) -> Self {
        Self {
            cfg,
            state: s.state,
            failures: s.failures,
            open_until_ms: s.open_until_ms,
            probe_since_ms: None,
            cooled_until_ms: s.cooled_until_ms,
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
        Breaker::new(BreakerConfig { failure_threshold: 3, cooldown_ms: 1000 })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let mut b = breaker();
        b.record_failure(0);
        b.record_failure(0);
        b.record_success();
        b.record_failure(0);
        b.record_failure(0);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.record_failure(10), Some((State::Closed, State::Open)));
        assert_eq!(b.admit(500).0, Admit::No { retry_in_ms: 510, why: Refusal::Open });
    }

    #[test]
    fn half_open_admits_one_probe() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        assert_eq!(b.admit(1000), (Admit::Yes, Some((State::Open, State::HalfOpen))));
        assert!(matches!(b.admit(1001).0, Admit::No { why: Refusal::Open, .. }));
        assert_eq!(b.record_success(), Some((State::HalfOpen, State::Closed)));
        assert_eq!(b.admit(1002).0, Admit::Yes);
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cooldown() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        b.admit(1000);
        assert_eq!(b.record_failure(1200), Some((State::HalfOpen, State::Open)));
        assert_eq!(b.admit(2199).0, Admit::No { retry_in_ms: 1, why: Refusal::Open });
        assert_eq!(b.admit(2200).0, Admit::Yes);
    }

    #[test]
    fn lost_probe_is_replaced_after_a_cooldown() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(0);
        }
        b.admit(1000);
        assert!(matches!(b.admit(1999).0, Admit::No { .. }));
        assert_eq!(b.admit(2000).0, Admit::Yes);
        b.release_probe();
        assert_eq!(b.admit(2001).0, Admit::Yes);
    }

    #[test]
    fn cooling_holds_a_closed_route() {
        let mut b = breaker();
        b.cool_until(5000);
        assert_eq!(b.admit(4000).0, Admit::No { retry_in_ms: 1000, why: Refusal::Cooling });
        assert_eq!(b.admit(5000).0, Admit::Yes);
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
        let mut r = Breaker::restore(BreakerConfig { failure_threshold: 3, cooldown_ms: 1000 }, s);
        assert!(matches!(r.admit(1099).0, Admit::No { .. }));
        assert_eq!(r.admit(1100).0, Admit::Yes);
    }
}
