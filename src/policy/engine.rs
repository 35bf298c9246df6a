//! The retry engine: a state machine that decides, and a host that does.
//!
//! A [`Session`] is one call. The host asks it what to do next, passing what it observed of the
//! last attempt, the current time and a fresh random number; the session answers with a
//! [`Decision`]: send an attempt on a route, wait, or stop with an [`Outcome`]. It never does
//! anything itself, so the same engine drives `fetch` in a browser, a Worker or a simulation
//! with a fake clock.
//!
//! ```
//! use llm_retry::policy::{config::Config, engine::*, classify::Observation};
//! let cfg = Config::default();
//! let mut shared = Shared::new(&cfg);
//! let mut s = Session::new(&cfg, vec![Route::new("api.example", cfg.max_attempts)], false);
//! let mut now = 0;
//! let mut seen = None;
//! let mut statuses = [503, 200].into_iter();
//! let outcome = loop {
//!     match s.next(&mut shared, seen.as_ref(), now, 0.5) {
//!         Decision::Attempt { .. } => {
//!             let status = statuses.next().unwrap_or(200);
//!             seen = Some(Observation::Response { status, headers: Default::default(), body: None });
//!         }
//!         Decision::Wait { ms, .. } => now += ms,
//!         Decision::Done(outcome) => break outcome,
//!     }
//! };
//! assert_eq!(outcome, Outcome::Success);
//! assert_eq!(s.report().attempts.len(), 2);
//! ```
//!
//! Per route, a transient failure is retried after `max(server hint, jittered backoff)` until
//! the route's attempts are spent; then, or at once on a failure another route may not share
//! (quota, auth, unknown model, a hint too long to wait for), the next route is tried. A route
//! whose breaker is open is skipped without a request. The caller's own errors end the call.

use alloc::{borrow::ToOwned, string::String, vec::Vec};

use super::breaker::{Admit, Breaker, BreakerConfig, Refusal, Snapshot, State};
use super::budget::Budget;
use super::classify::{classify, Class, Observation, Reason};
use super::config::{Config, MAX_MS};
use super::hints::{self, HintSource};

/// One way to serve the request: the primary, or a fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The breaker this route reports to (the host uses origin + model).
    pub key: String,
    /// Attempts on this route, counting the first.
    pub max_attempts: u32,
}

impl Route {
    pub fn new(key: impl Into<String>, max_attempts: u32) -> Self {
        Self { key: key.into(), max_attempts }
    }
}

/// Health state shared by every call through one client: the breakers and the budget.
#[derive(Clone, Debug)]
pub struct Shared {
    breaker_cfg: Option<BreakerConfig>,
    budget: Option<Budget>,
    /// By key; a client has a handful of routes, so a list beats a map (and is smaller in wasm).
    breakers: Vec<(String, Breaker)>,
}

impl Shared {
    pub fn new(cfg: &Config) -> Self {
        Self { breaker_cfg: cfg.breaker, budget: cfg.budget.map(Budget::new), breakers: Vec::new() }
    }

    /// Every breaker that has seen traffic, by key.
    pub fn snapshot(&self) -> Vec<(String, Snapshot)> {
        self.breakers.iter().map(|(k, b)| (k.clone(), b.snapshot())).collect()
    }

    /// Restores one breaker (ignored when breakers are off).
    pub fn restore(&mut self, key: String, snapshot: Snapshot) {
        if let Some(cfg) = self.breaker_cfg {
            let restored = Breaker::restore(cfg, snapshot);
            match self.breakers.iter_mut().find(|(k, _)| *k == key) {
                Some((_, b)) => *b = restored,
                None => self.breakers.push((key, restored)),
            }
        }
    }

    fn breaker(&mut self, key: &str) -> Option<&mut Breaker> {
        let cfg = self.breaker_cfg?;
        let i = match self.breakers.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.breakers.push((key.to_owned(), Breaker::new(cfg)));
                self.breakers.len() - 1
            }
        };
        self.breakers.get_mut(i).map(|(_, b)| b)
    }
}

/// What the wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitCause {
    /// The jittered exponential backoff.
    Backoff,
    /// A server hint, longer than the backoff.
    Hint(HintSource),
    /// The route is cooling down after another call's rate-limit hint.
    Cooling,
}

impl WaitCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backoff => "backoff",
            Self::Hint(h) => h.as_str(),
            Self::Cooling => "cooling",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send the request on `route`; abort it if no response headers came within `timeout_ms`.
    /// `attempt` counts from 1 across routes.
    Attempt {
        route: usize,
        attempt: u32,
        timeout_ms: u64,
    },
    /// Sleep, then call `next` again.
    Wait {
        ms: u64,
        cause: WaitCause,
    },
    Done(Outcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The last response is the result.
    Success,
    /// The last observation stands, and retrying would not change it (a 400, `x-should-retry:
    /// false`, a timed-out request that is not safe to repeat).
    Returned(Reason),
    /// Every route was tried or skipped; the last observation stands. The reason is why the
    /// last route was given up.
    Exhausted(Reason),
    /// The caller aborted.
    Aborted,
    /// Every route's breaker is open and nothing was sent.
    CircuitOpen { retry_in_ms: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub route: usize,
    pub status: Option<u16>,
    pub reason: Reason,
    /// The wait before this attempt.
    pub waited_ms: u64,
}

/// What happened during a call, for logs: which route served it and how it got there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub attempts: Vec<AttemptRecord>,
    pub total_wait_ms: u64,
    /// The route whose response is the result, when one is.
    pub served_by: Option<usize>,
    /// Whether any route after the first was tried.
    pub fallback: bool,
    /// Routes skipped because their breaker was open.
    pub skipped: Vec<usize>,
    pub started_ms: u64,
    pub ended_ms: u64,
}

/// Things worth telling the user about, drained with [`Session::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Retry {
        attempt: u32,
        route: usize,
        delay_ms: u64,
        reason: Reason,
        status: Option<u16>,
        cause: WaitCause,
    },
    /// `status` is the last response's, when the route was left on one.
    Fallback {
        from: usize,
        to: usize,
        reason: Reason,
        status: Option<u16>,
    },
    /// A route passed over without a request: its breaker is open (`Reason::CircuitOpen`) or it
    /// is cooling after a server's wait hint (`Reason::HintTooLong` is not used here: `cooling`).
    Skip {
        route: usize,
        retry_in_ms: u64,
        cooling: bool,
    },
    Breaker {
        key: String,
        from: State,
        to: State,
    },
    GiveUp {
        reason: Reason,
        attempts: u32,
        status: Option<u16>,
    },
    Success {
        attempts: u32,
        route: usize,
        total_ms: u64,
        fallback: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    /// An attempt is out; `deadline_bound` when its timeout is the call's deadline.
    Attempting {
        route: usize,
        deadline_bound: bool,
    },
    Waiting {
        route: usize,
    },
    Done(Outcome),
}

/// One call's retry state. See the module docs.
#[derive(Clone, Debug)]
pub struct Session {
    cfg: Config,
    routes: Vec<Route>,
    idempotent: bool,
    phase: Phase,
    deadline_at: u64,
    route_attempts: u32,
    prev_delay: u64,
    pending_wait: u64,
    report: Report,
    /// Pending, oldest first (a handful at most: a Vec beats a VecDeque on size).
    events: Vec<Event>,
}

impl Session {
    /// `routes` are tried in order (the first is the primary). `idempotent` is this request's
    /// own safety to repeat; `cfg.idempotent` also makes it so.
    pub fn new(cfg: &Config, routes: Vec<Route>, idempotent: bool) -> Self {
        Self {
            idempotent: idempotent || cfg.idempotent,
            cfg: cfg.clone(),
            routes,
            phase: Phase::Start,
            deadline_at: 0,
            route_attempts: 0,
            prev_delay: 0,
            pending_wait: 0,
            report: Report::default(),
            events: Vec::new(),
        }
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The report, for a session that is done.
    pub fn into_report(self) -> Report {
        self.report
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }

    /// The next step. `observed` is the outcome of the attempt the previous decision asked for
    /// (ignored otherwise); `now_ms` is wall-clock time; `rand` is uniform in `[0, 1)`.
    #[inline(never)]
    pub fn next(&mut self, shared: &mut Shared, observed: Option<&Observation>, now_ms: u64, rand: f64) -> Decision {
        match self.phase {
            Phase::Start => {
                self.report.started_ms = now_ms;
                self.deadline_at = now_ms.saturating_add(self.cfg.deadline_ms);
                self.enter_route(shared, 0, now_ms, None)
            }
            Phase::Attempting { route, deadline_bound } => {
                let obs = observed.unwrap_or(&Observation::NetworkError);
                self.observe(shared, route, deadline_bound, obs, now_ms, rand)
            }
            Phase::Waiting { route } => self.after_wait(shared, route, now_ms),
            Phase::Done(outcome) => Decision::Done(outcome),
        }
    }

    /// Tries routes from `first` on, skipping open ones; `moved` is where we came from and why.
    fn enter_route(&mut self, shared: &mut Shared, first: usize, now: u64, moved: Option<(usize, Reason)>) -> Decision {
        let mut retry_in = u64::MAX;
        for route in first..self.routes.len() {
            if now >= self.deadline_at {
                break;
            }
            match self.admit(shared, route, now) {
                Admit::Yes => {
                    if let Some((from, reason)) = moved {
                        let status = self.last_status();
                        self.events.push(Event::Fallback { from, to: route, reason, status });
                    }
                    self.report.fallback |= route > 0;
                    self.route_attempts = 0;
                    self.prev_delay = 0;
                    return self.attempt(route, now);
                }
                Admit::No { retry_in_ms, why } => {
                    self.report.skipped.push(route);
                    self.events.push(Event::Skip { route, retry_in_ms, cooling: why == Refusal::Cooling });
                    retry_in = retry_in.min(retry_in_ms);
                }
            }
        }
        let outcome = match moved {
            _ if self.report.attempts.is_empty() && now < self.deadline_at => {
                Outcome::CircuitOpen { retry_in_ms: if retry_in == u64::MAX { 0 } else { retry_in } }
            }
            Some((_, reason)) => Outcome::Exhausted(reason),
            None => Outcome::Exhausted(Reason::Deadline),
        };
        self.finish(outcome, now)
    }

    fn attempt(&mut self, route: usize, now: u64) -> Decision {
        self.route_attempts += 1;
        let left = self.deadline_at.saturating_sub(now);
        let (timeout_ms, deadline_bound) = match self.cfg.attempt_timeout_ms {
            Some(t) if t < left => (t, false),
            _ => (left, true),
        };
        self.phase = Phase::Attempting { route, deadline_bound };
        let attempt = self.report.attempts.len() as u32 + 1;
        Decision::Attempt { route, attempt, timeout_ms }
    }

    fn observe(
        &mut self,
        shared: &mut Shared,
        route: usize,
        deadline_bound: bool,
        obs: &Observation,
        now: u64,
        rand: f64,
    ) -> Decision {
        let (class, reason) = classify(obs, &self.cfg.retry_on, self.idempotent);
        let waited_ms = core::mem::take(&mut self.pending_wait);
        self.report.attempts.push(AttemptRecord { route, status: obs.status(), reason, waited_ms });
        self.record_health(shared, route, class, reason, now);
        // A timeout that was the call's deadline ends the call, idempotent or not. One seen before
        // the deadline is the attempt's own (an SDK's timeout error, in `retry(fn)`).
        if deadline_bound && *obs == Observation::Timeout && now >= self.deadline_at {
            return self.finish(Outcome::Exhausted(Reason::Deadline), now);
        }
        match class {
            Class::Success => {
                self.report.served_by = Some(route);
                self.finish(Outcome::Success, now)
            }
            Class::Abort => self.finish(Outcome::Aborted, now),
            Class::Final => self.finish(Outcome::Returned(reason), now),
            Class::RouteFailure => self.enter_route(shared, route + 1, now, Some((route, reason))),
            Class::Transient => self.plan_retry(shared, route, obs, reason, now, rand),
        }
    }

    fn plan_retry(
        &mut self,
        shared: &mut Shared,
        route: usize,
        obs: &Observation,
        reason: Reason,
        now: u64,
        rand: f64,
    ) -> Decision {
        let hint = match obs {
            Observation::Response { status, headers, .. } => hints::wait_hint(headers, *status, now),
            _ => None,
        };
        if let (Some(h), Some(429)) = (hint, obs.status()) {
            let key = &self.routes[route].key;
            if let Some(b) = shared.breaker(key) {
                b.cool_until(now.saturating_add(h.ms.min(MAX_MS)));
            }
        }
        let move_on =
            |s: &mut Self, shared: &mut Shared, why| s.enter_route(shared, route + 1, now, Some((route, why)));
        if self.route_attempts >= self.routes[route].max_attempts {
            return move_on(self, shared, Reason::AttemptsExhausted);
        }
        // This failure opened the route's breaker (or failed its probe): waiting to send it
        // another request would only be refused, so move on now.
        if shared.breaker(&self.routes[route].key).is_some_and(|b| b.state() == State::Open) {
            return move_on(self, shared, Reason::CircuitOpen);
        }
        if shared.budget.as_ref().is_some_and(|b| !b.can_retry()) {
            return move_on(self, shared, Reason::BudgetExhausted);
        }
        if hint.is_some_and(|h| h.ms > self.cfg.max_retry_after_ms) {
            return move_on(self, shared, Reason::HintTooLong);
        }
        let backoff = self.cfg.backoff.delay(self.route_attempts, self.prev_delay, rand);
        self.prev_delay = backoff;
        let (ms, cause) = match hint {
            Some(h) if h.ms > backoff => (h.ms, WaitCause::Hint(h.source)),
            _ => (backoff, WaitCause::Backoff),
        };
        if now.saturating_add(ms) >= self.deadline_at {
            let why = if cause == WaitCause::Backoff { Reason::Deadline } else { Reason::HintTooLong };
            return move_on(self, shared, why);
        }
        let attempt = self.report.attempts.len() as u32;
        self.events.push(Event::Retry { attempt, route, delay_ms: ms, reason, status: obs.status(), cause });
        self.sleep(route, ms, cause)
    }

    fn after_wait(&mut self, shared: &mut Shared, route: usize, now: u64) -> Decision {
        if now >= self.deadline_at {
            return self.finish(Outcome::Exhausted(Reason::Deadline), now);
        }
        match self.admit(shared, route, now) {
            Admit::Yes => self.attempt(route, now),
            Admit::No { retry_in_ms, why: Refusal::Cooling }
                if retry_in_ms <= self.cfg.max_retry_after_ms && now.saturating_add(retry_in_ms) < self.deadline_at =>
            {
                self.sleep(route, retry_in_ms, WaitCause::Cooling)
            }
            Admit::No { .. } => self.enter_route(shared, route + 1, now, Some((route, Reason::CircuitOpen))),
        }
    }

    fn sleep(&mut self, route: usize, ms: u64, cause: WaitCause) -> Decision {
        self.pending_wait = self.pending_wait.saturating_add(ms);
        self.report.total_wait_ms = self.report.total_wait_ms.saturating_add(ms);
        self.phase = Phase::Waiting { route };
        Decision::Wait { ms, cause }
    }

    fn admit(&mut self, shared: &mut Shared, route: usize, now: u64) -> Admit {
        let key = &self.routes[route].key;
        let Some(breaker) = shared.breaker(key) else {
            return Admit::Yes;
        };
        let (admit, change) = breaker.admit(now);
        self.note_change(route, change);
        admit
    }

    fn record_health(&mut self, shared: &mut Shared, route: usize, class: Class, reason: Reason, now: u64) {
        let failed = matches!(class, Class::Transient | Class::RouteFailure) || reason == Reason::TimeoutNotIdempotent;
        // A rate limit says "slow down", not "down": its hint cools the route for just that
        // long, and it neither counts toward nor resets the breaker's run of failures.
        let breaker_neutral = reason == Reason::RateLimited;
        if let Some(budget) = shared.budget.as_mut() {
            match class {
                Class::Transient => budget.record_failure(),
                Class::Success => budget.record_success(),
                _ => {}
            }
        }
        let key = &self.routes[route].key;
        let Some(breaker) = shared.breaker(key) else {
            return;
        };
        let change = match class {
            Class::Abort => {
                breaker.release_probe();
                None
            }
            _ if breaker_neutral => {
                breaker.release_probe();
                None
            }
            _ if failed => breaker.record_failure(now),
            _ => breaker.record_success(),
        };
        self.note_change(route, change);
    }

    fn note_change(&mut self, route: usize, change: Option<(State, State)>) {
        if let Some((from, to)) = change {
            let key = self.routes[route].key.clone();
            self.events.push(Event::Breaker { key, from, to });
        }
    }

    fn last_status(&self) -> Option<u16> {
        self.report.attempts.last().and_then(|a| a.status)
    }

    fn finish(&mut self, outcome: Outcome, now: u64) -> Decision {
        self.report.ended_ms = now;
        let attempts = self.report.attempts.len() as u32;
        let event = match outcome {
            Outcome::Success => Some(Event::Success {
                attempts,
                route: self.report.served_by.unwrap_or(0),
                total_ms: now.saturating_sub(self.report.started_ms),
                fallback: self.report.fallback,
            }),
            Outcome::Returned(reason) | Outcome::Exhausted(reason) => {
                Some(Event::GiveUp { reason, attempts, status: self.last_status() })
            }
            Outcome::CircuitOpen { .. } => Some(Event::GiveUp { reason: Reason::CircuitOpen, attempts, status: None }),
            Outcome::Aborted => None,
        };
        self.events.extend(event);
        self.phase = Phase::Done(outcome);
        Decision::Done(outcome)
    }
}
