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
//!         Decision::Slot { .. } => s.grant(None), // only when pacing is shared
//!         Decision::Done(outcome) => break outcome,
//!     }
//! };
//! assert_eq!(outcome, Outcome::Success);
//! assert_eq!(s.report().attempts.len(), 2);
//! ```
//!
//! Per route, a transient failure is retried after the jittered backoff, or after exactly the
//! time the server named (plus a small bounded jitter) when it named one, until the route's
//! attempts are spent; then, or at once on a failure another route may not share (quota, auth,
//! unknown model, a hint too long to wait for), the next route is tried. The caller's own errors
//! end the call.
//!
//! # Waiting in line
//! A route may refuse a send for a while: it is *cooling* after a 429's wait hint, its breaker
//! is *open*, or its *pacer* has no slot yet (see [`super::pacing`]). A call then takes a later
//! route that is ready at once, if there is one; otherwise it waits for the route that can be
//! tried soonest — within its deadline — instead of failing. Only a call that no route can take
//! within its deadline fails fast (`CircuitOpen` when nothing was sent). A wait for an open
//! breaker may end early: [`Shared::take_woken`] names the route when a probe succeeds, and the
//! host then wakes the waits on it, so waiting calls are served as soon as the provider is back.
//!
//! A route whose pacing is shared with other instances ([`Shared::share_pacing`]) and is busy
//! asks before it sends: [`Decision::Slot`]; the host asks the shared bucket and hands the
//! answer to [`Session::grant`]. The call then sends at that slot, as at a slot of its own.
use alloc::{rc::Rc, string::String, vec::Vec};

use super::breaker::{Admit, Breaker, BreakerConfig, Refusal, Snapshot, State};
use super::budget::Budget;
use super::classify::{classify, Class, Observation, Reason};
use super::config::{Config, MAX_MS};
use super::health::{until_told, Record};
use super::hints::{self, Hint, HintSource};
use super::pacing::{Ask, Pacer, Slot};

/// A random number in `[0, 1)` for [`Session::next`]: a number, or a function called only when
/// the step draws a wait (most steps do not), so a host whose randomness is costly to start
/// (Node loads its crypto on first use) pays for it only when a call retries.
pub trait Random {
    fn get(self) -> f64;
}

impl Random for f64 {
    fn get(self) -> f64 {
        self
    }
}

impl<F: FnOnce() -> f64> Random for F {
    fn get(self) -> f64 {
        self()
    }
}

/// A hinted wait gets up to this share of itself added at random, so that calls told the same
/// instant do not all come back at it...
const HINT_JITTER: f64 = 0.1;
/// ...and never more than this.
const HINT_JITTER_MAX_MS: u64 = 1_000;

/// A call in line for a pacing slot asks again at least this often: the rate it was given may
/// have risen (or fallen) since, and its place in line moves with it.
const IN_LINE_ASK_MS: u64 = 500;

/// How long a call in line for `slot`, `ms` from its turn, sleeps before it asks again.
fn in_line(slot: Slot, ms: u64) -> u64 {
    match slot {
        Slot::InLine { .. } => ms.min(IN_LINE_ASK_MS),
        Slot::At(_) => ms,
    }
}

/// One way to serve the request: the primary, or a fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The breaker this route reports to (the host uses origin + model).
    pub key: Rc<str>,
    /// Attempts on this route, counting the first.
    pub max_attempts: u32,
}

impl Route {
    /// `key`: a shared string, so the host can hand every call the same one.
    pub fn new(key: impl Into<Rc<str>>, max_attempts: u32) -> Self {
        Self { key: key.into(), max_attempts }
    }
}

/// One route's health: its breaker (when breakers are on) and its pacer.
#[derive(Clone, Debug)]
struct Health {
    breaker: Option<Breaker>,
    pacer: Pacer,
    /// What was last told to, or learned from, other instances (see [`Shared::changed`]).
    told: Record,
    /// Looked up since [`Shared::changed`] last ran (listed in `Shared::touched`).
    touched: bool,
}

impl Health {
    /// Nothing in it that a route made anew would lack from `now` on, and no opening or closing
    /// of its breaker left untold (see [`Shared::changed`]): it may be dropped (see
    /// [`Shared::tidy`]). A pause that is over is no news.
    fn at_rest(&self, now: u64) -> bool {
        let told = |b: &Breaker| {
            let r = b.record();
            r.opened_at <= self.told.opened_at && r.closed_at <= self.told.closed_at
        };
        self.pacer.at_rest(now) && self.breaker.as_ref().is_none_or(|b| b.at_rest(now) && told(b))
    }
}

/// Health state shared by every call through one client: each route's breaker and pacer, and
/// the budget.
#[derive(Clone, Debug)]
pub struct Shared {
    breaker_cfg: Option<BreakerConfig>,
    budget: Option<Budget>,
    pacing: bool,
    /// Busy routes take their send slots from a bucket shared with other instances.
    share_pacing: bool,
    /// By key. A client mostly has a handful of routes, searched in turn: a key is kept as the
    /// first route handed it (a client's calls share their keys' strings), so a lookup is mostly
    /// a pointer comparison. Past [`SCAN`] routes (a gateway passing its users' models on makes
    /// one per model) they are found through `index` instead, so a call costs the same with
    /// 10,000 routes as with one.
    routes: Vec<(Rc<str>, Health)>,
    /// Open addressing over `routes` by the keys' hash (`seed`ed): a slot holds a route's index
    /// plus one, 0 when empty; at most half the slots are taken. Empty up to [`SCAN`] routes.
    index: Vec<u32>,
    seed: u32,
    /// The routes looked up since [`Shared::changed`] last ran: only they can have news.
    touched: Vec<u32>,
    /// As many routes as [`Shared::tidy`] lets be before it drops those at rest.
    tidy_at: usize,
    /// The routes whose calls waiting for their breaker may go sooner, since last taken (see
    /// [`Shared::take_woken`]).
    woken: Vec<Rc<str>>,
}

/// Routes searched in turn before they are indexed.
const SCAN: usize = 16;

/// Routes kept before those at rest are dropped (see [`Shared::tidy`]).
const KEEP: usize = 4_096;

/// FNV-1a over the key's bytes, from `seed` (the host's random number, so that keys made to
/// collide cannot be chosen from outside).
fn hash(seed: u32, key: &str) -> u32 {
    key.bytes().fold(seed ^ 0x811c_9dc5, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

impl Shared {
    pub fn new(cfg: &Config) -> Self {
        Self {
            breaker_cfg: cfg.breaker,
            budget: cfg.budget.map(Budget::new),
            pacing: cfg.pacing,
            share_pacing: false,
            routes: Vec::new(),
            index: Vec::new(),
            seed: 0,
            touched: Vec::new(),
            tidy_at: KEEP,
            woken: Vec::new(),
        }
    }

    /// Drops the routes at rest (their breaker closed with nothing counted, their pacer with
    /// nothing learned, nothing untold) once there are [`KEEP`] routes, then again each time
    /// the routes kept have doubled: a client whose calls name ever new models (a gateway passing
    /// its users' on: a route each) holds the routes that have something to remember, not every
    /// one it has seen. A route dropped is made anew when next used, as it would be. (The list's
    /// room stays what it was at its longest.)
    fn tidy(&mut self, now: u64) {
        if self.routes.len() < self.tidy_at {
            return;
        }
        // The routes kept move to the front, in order; the touched among them are listed anew.
        self.touched.clear();
        let mut kept = 0;
        for i in 0..self.routes.len() {
            let Some((_, h)) = self.routes.get(i) else { break };
            if !h.at_rest(now) {
                if h.touched {
                    self.touched.push(kept as u32);
                }
                self.routes.swap(kept, i);
                kept += 1;
            }
        }
        self.routes.truncate(kept);
        self.reindex();
        self.tidy_at = KEEP.max(2 * self.routes.len());
    }

    /// How many routes are kept.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// Seeds the hash routes are indexed by past [`SCAN`] of them (see `hash`); a seed of 0 is
    /// none.
    pub fn seed(&mut self, seed: u32) {
        self.seed = seed;
        self.reindex();
    }

    /// Whether the routes are about to be indexed (as many as [`SCAN`]) and [`Shared::seed`] has
    /// not been given a seed yet.
    pub fn needs_seed(&self) -> bool {
        self.seed == 0 && self.routes.len() >= SCAN
    }

    /// From now on a busy route asks for its send slots ([`Decision::Slot`]): the host has a
    /// bucket shared with other instances (see [`super::pacing`]).
    pub fn share_pacing(&mut self) {
        self.share_pacing = self.pacing;
    }

    /// Every breaker that has seen traffic, by key.
    pub fn snapshot(&self) -> impl Iterator<Item = (&str, Snapshot)> {
        self.routes.iter().filter_map(|(k, h)| Some((&**k, h.breaker.as_ref()?.snapshot())))
    }

    /// Restores one breaker (ignored when breakers are off).
    pub fn restore(&mut self, key: String, snapshot: Snapshot, now: u64) {
        if let Some(cfg) = self.breaker_cfg {
            let snapshot = Snapshot {
                open_until_ms: until_told(snapshot.open_until_ms, now),
                cooled_until_ms: until_told(snapshot.cooled_until_ms, now),
                ..snapshot
            };
            self.health(&Rc::from(key)).breaker = Some(Breaker::restore(cfg, snapshot));
        }
    }

    /// What other instances told about `key` (see [`super::health`]), adopted by its breaker; a
    /// closing names the route to [`Shared::take_woken`].
    pub fn adopt(&mut self, key: &str, shared: Record, now: u64) {
        let shared = shared.sane(now);
        let key = Rc::from(key);
        let h = self.health(&key);
        h.told = h.told.join(shared);
        let Some(b) = h.breaker.as_mut() else { return };
        let told = h.told.join(b.record());
        h.told = told;
        if b.adopt(&told, now).is_some_and(|(_, to)| to == State::Closed) {
            self.woken.push(key);
        }
    }

    /// The routes whose breaker has news for other instances since this was last asked (an
    /// opening, a closing, a pause), with their record; each is told once.
    pub fn changed(&mut self) -> Vec<(String, Record)> {
        let mut out = Vec::new();
        while let Some(i) = self.touched.pop() {
            let Some((key, h)) = self.routes.get_mut(i as usize) else { continue };
            h.touched = false;
            if let Some(b) = &h.breaker {
                let now = h.told.join(b.record());
                if now != h.told {
                    h.told = now;
                    out.push((String::from(&**key), now));
                }
            }
        }
        out
    }

    /// The routes that may admit sooner than the calls waiting for them were told (a breaker
    /// closed, or its probe was given back) since this was last asked: the host wakes the
    /// `WaitCause::Breaker` waits of the calls on them, and only those.
    pub fn take_woken(&mut self) -> Vec<Rc<str>> {
        core::mem::take(&mut self.woken)
    }

    fn health(&mut self, key: &Rc<str>) -> &mut Health {
        let i = match self.find(key) {
            Some(i) => i,
            None => {
                let health = Health {
                    breaker: self.breaker_cfg.map(Breaker::new),
                    pacer: Pacer::default(),
                    told: Record::default(),
                    touched: false,
                };
                // Room for just the first: most clients have one route, and one made per
                // request is kept until it is finalized.
                if self.routes.is_empty() {
                    self.routes.reserve_exact(1);
                }
                self.routes.push((key.clone(), health));
                if self.routes.len() > SCAN {
                    if self.index.len() < 2 * self.routes.len() {
                        self.reindex();
                    } else {
                        self.place(self.routes.len() - 1);
                    }
                }
                self.routes.len() - 1
            }
        };
        let h = &mut self.routes[i].1;
        if !h.touched {
            h.touched = true;
            self.touched.push(i as u32);
        }
        h
    }

    /// The index of `key`'s route.
    fn find(&self, key: &Rc<str>) -> Option<usize> {
        // `==` on `Rc<str>` compares the pointers first, then the strings.
        let same = |(k, _): &(Rc<str>, Health)| k == key;
        if self.index.is_empty() {
            return self.routes.iter().position(same);
        }
        let mask = self.index.len() - 1;
        let mut slot = hash(self.seed, key) as usize;
        loop {
            // An empty slot (0) ends the search; any other holds a route's index plus one.
            let i = (*self.index.get(slot & mask)? as usize).checked_sub(1)?;
            if same(self.routes.get(i)?) {
                return Some(i);
            }
            slot = slot.wrapping_add(1);
        }
    }

    /// Puts route `i` into `index`, in the first free slot from its key's hash on.
    fn place(&mut self, i: usize) {
        let mask = self.index.len().wrapping_sub(1);
        let mut slot = self.routes.get(i).map_or(0, |(k, _)| hash(self.seed, k) as usize);
        while let Some(n) = self.index.get_mut(slot & mask) {
            if *n == 0 {
                *n = i as u32 + 1;
                return;
            }
            slot = slot.wrapping_add(1);
        }
    }

    /// Builds `index` anew, with four slots a route, once there are more than [`SCAN`].
    fn reindex(&mut self) {
        let n = self.routes.len();
        self.index = Vec::new();
        if n > SCAN {
            self.index = alloc::vec![0; (4 * n).next_power_of_two()];
            for i in 0..n {
                self.place(i);
            }
        }
    }
}

/// What a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitCause {
    /// The jittered exponential backoff.
    Backoff,
    /// The time a server named (`Retry-After` and the like), plus a small bounded jitter.
    Hint(HintSource),
    /// The route is cooling down after a 429's wait hint (this call's or another's).
    Cooling,
    /// The route's pacer has no slot before then.
    Pacing,
    /// The route's breaker is open (or its probe is out). The host ends this wait early when
    /// [`Shared::take_woken`] names one of the call's routes.
    Breaker,
}

impl WaitCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backoff => "backoff",
            Self::Hint(h) => h.as_str(),
            Self::Cooling => "cooling",
            Self::Pacing => "pacing",
            Self::Breaker => "breaker",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send the request on `route`; `attempt` counts from 1 across routes. Abort it if no
    /// response headers came within `timeout_ms`: `attemptTimeoutMs`, or the time left when the
    /// deadline also bounds attempts in flight (`deadline_cuts_attempts`); none: bounded only by
    /// the caller and the transport — the default deadline bounds waits and new attempts, never a
    /// healthy attempt in flight. `deadline_ms` is the time left: an event stream's wait for its
    /// first content event is bounded by it. `limits`: whether a success's rate-limit headers
    /// are worth reading (pacing is on, and the route's provider sends them and its last count was
    /// not far from pacing, or this is a sampled response; see
    /// [`Pacer::wants_limits`](super::pacing::Pacer::wants_limits)).
    Attempt {
        route: usize,
        attempt: u32,
        timeout_ms: Option<u64>,
        deadline_ms: u64,
        limits: bool,
    },
    /// Ask the bucket shared with other instances for a send slot on `route`, tell the answer to
    /// [`Session::grant`] (none when the bucket could not answer, or not within `wait_ms`: half
    /// the time left before the deadline, so that a slow store leaves the call the other half to
    /// send at this instance's own slot), then call `next` again.
    Slot {
        route: usize,
        ask: Ask,
        wait_ms: u64,
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
    /// Every route was tried or could not be waited for; the last observation stands. The
    /// reason is why the last route was given up.
    Exhausted(Reason),
    /// The caller aborted.
    Aborted,
    /// Nothing was sent: no route could be tried within the deadline. `reason` is what held
    /// the soonest one (`CircuitOpen`, `Cooling` or `Pacing`).
    CircuitOpen { retry_in_ms: u64, reason: Reason },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub route: usize,
    pub status: Option<u16>,
    pub reason: Reason,
    /// The time waited before this attempt.
    pub waited_ms: u64,
    /// A `200` stream that failed before its first content event.
    pub in_stream: bool,
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
    /// Routes passed over without a request (breaker open, cooling, no pacing slot) for another.
    pub skipped: Vec<usize>,
    pub started_ms: u64,
    pub ended_ms: u64,
    /// For a stream: from the call's start to its first content event.
    pub first_token_ms: Option<u64>,
}

/// Things worth telling the user about, drained with [`Session::poll_event`]. Each tells what
/// happened, when it happened: a `Retry` is emitted as the retry is sent, with the time waited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A retry on the same route is being sent, `delay_ms` after `attempt` (1-based, across
    /// routes) failed; `cause` is what the last wait before it was for.
    Retry {
        attempt: u32,
        route: usize,
        delay_ms: u64,
        reason: Reason,
        status: Option<u16>,
        cause: WaitCause,
    },
    /// Attempt `attempt` (1-based, across routes) is being sent on `route`: the last event
    /// before each request leaves.
    Attempt {
        attempt: u32,
        route: usize,
    },
    /// A stream's first content event arrived on `route`: from here on it is the caller's.
    Commit {
        route: usize,
        attempt: u32,
        first_token_ms: u64,
    },
    /// The call waits `delay_ms` for `route` before its next attempt.
    Wait {
        route: usize,
        delay_ms: u64,
        cause: WaitCause,
    },
    /// `status` is the last response's, when the route was left on one.
    Fallback {
        from: usize,
        to: usize,
        reason: Reason,
        status: Option<u16>,
    },
    /// A route passed over without a request, for a later one or because none could be waited
    /// for: its breaker is open, it is cooling after a wait hint, or it has no pacing slot.
    Skip {
        route: usize,
        retry_in_ms: u64,
        cause: WaitCause,
    },
    Breaker {
        key: Rc<str>,
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
    /// Waiting; then a route is sought from `from` on (the current one first, if `from` is it).
    /// `moved`: the route being left and why, when it is.
    Waiting {
        from: usize,
        moved: Option<(usize, Reason)>,
    },
    /// Asking a shared bucket for a slot on `route` (see [`Decision::Slot`]); the search then
    /// goes on as from `Waiting`.
    Slotting {
        from: usize,
        moved: Option<(usize, Reason)>,
        route: usize,
        within: Option<u64>,
        granted: Option<u64>,
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
    /// The route attempts go to (the primary until a fallback is taken).
    route: usize,
    route_attempts: u32,
    prev_delay: u64,
    /// When the last attempt's outcome came in (or the call started): waits count from it.
    since: u64,
    /// What the last wait was for.
    last_cause: WaitCause,
    /// A pacing slot this call holds: (route, its place in line).
    reserved: Option<(usize, Slot)>,
    /// The wait before the attempt that is out, for its record.
    pending_waited: u64,
    report: Report,
    /// Pending, oldest first (a handful at most: a Vec beats a VecDeque on size).
    events: Vec<Event>,
    /// Whether events are kept for [`Self::poll_event`] (see [`Self::keep_no_events`]).
    tell: bool,
}

impl Session {
    /// `routes` are tried in order (the first is the primary). `idempotent` is this request's
    /// own safety to repeat; `cfg.idempotent` also makes it so.
    pub fn new(cfg: &Config, routes: Vec<Route>, idempotent: bool) -> Self {
        Self {
            idempotent: idempotent || cfg.idempotent,
            cfg: *cfg,
            routes,
            phase: Phase::Start,
            deadline_at: 0,
            route: 0,
            route_attempts: 0,
            prev_delay: 0,
            since: 0,
            last_cause: WaitCause::Backoff,
            reserved: None,
            pending_waited: 0,
            // Room for the first attempt's record: most calls make one, and it is then pushed
            // without the growing path (code a call's first attempt would otherwise bring in).
            report: Report { attempts: Vec::with_capacity(1), ..Report::default() },
            events: Vec::new(),
            tell: true,
        }
    }

    /// The shared bucket's answer to [`Decision::Slot`]: the slot `at` (ms since the epoch), or
    /// none when it could not answer (the route's own pacer then gives the slot).
    pub fn grant(&mut self, at: Option<u64>) {
        if let Phase::Slotting { granted, .. } = &mut self.phase {
            *granted = at;
        }
    }

    /// The breaker keys of this call's routes: a `WaitCause::Breaker` wait ends early when one
    /// of them is woken (see [`Shared::take_woken`]).
    pub fn keys(&self) -> impl Iterator<Item = &Rc<str>> {
        self.routes.iter().map(|r| &r.key)
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The report, for a session that is done.
    pub fn into_report(self) -> Report {
        self.report
    }

    /// For a session whose events nobody reads: none is kept from now on (the common case, no
    /// `onEvent`, then allocates no event queue). Decisions and the report are the same. Set in
    /// place: a session is ~0.4 KB, and a builder taking it by value copied it.
    pub fn keep_no_events(&mut self) {
        self.tell = false;
    }

    fn event(&mut self, e: Event) {
        if self.tell {
            self.events.push(e);
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }

    /// The next step. `observed` is the outcome of the attempt the previous decision asked for
    /// (ignored otherwise); `now_ms` is wall-clock time; `rand` is uniform in `[0, 1)`: a number,
    /// or a function asked only when a wait is drawn (see [`Random`]).
    #[inline(never)]
    pub fn next(
        &mut self,
        shared: &mut Shared,
        observed: Option<&Observation>,
        now_ms: u64,
        rand: impl Random,
    ) -> Decision {
        match self.phase {
            Phase::Start => {
                shared.tidy(now_ms);
                self.report.started_ms = now_ms;
                self.since = now_ms;
                self.deadline_at = now_ms.saturating_add(self.cfg.deadline_ms);
                self.seek(shared, 0, None, now_ms)
            }
            Phase::Attempting { route, deadline_bound } => {
                let obs = observed.unwrap_or(&Observation::NetworkError);
                self.observe(shared, route, deadline_bound, obs, now_ms, rand)
            }
            Phase::Waiting { from, moved } => self.seek(shared, from, moved, now_ms),
            Phase::Slotting { from, moved, route, within, granted } => {
                let pacer = &mut shared.health(&self.routes[route].key).pacer;
                let slot = match granted {
                    // Later than asked for: not taken, so another route ready now goes first; or
                    // past the deadline: never used.
                    Some(at) if within.is_some_and(|w| at > now_ms.saturating_add(w)) || at >= self.deadline_at => {
                        Slot::At(at)
                    }
                    Some(at) => {
                        pacer.granted(at);
                        Slot::At(at)
                    }
                    None => pacer.reserve(now_ms),
                };
                self.reserved = Some((route, slot));
                self.seek(shared, from, moved, now_ms)
            }
            Phase::Done(outcome) => Decision::Done(outcome),
        }
    }

    /// Sends on the first route from `from` on that can take a request now; else waits in line
    /// for the one that can soonest; else, when none can within the deadline, ends the call.
    fn seek(&mut self, shared: &mut Shared, from: usize, moved: Option<(usize, Reason)>, now: u64) -> Decision {
        let mut soonest: Option<(usize, u64, WaitCause)> = None;
        // The soonest end of a cooling too long to wait for: such a route is not waited for, but
        // a call that sends nothing says when it admits again.
        let mut cooling_long: Option<u64> = None;
        if now < self.deadline_at {
            for route in from..self.routes.len() {
                match self.check(shared, route, now) {
                    Ok(()) => match self.shared_ask(shared, route, now) {
                        Some(mut ask) => {
                            // With another route ready now, a slot later than now is not worth taking.
                            let other_ready =
                                (route + 1..self.routes.len()).any(|r| self.check(shared, r, now).is_ok());
                            ask.within = other_ready.then_some(0);
                            self.phase = Phase::Slotting { from, moved, route, within: ask.within, granted: None };
                            let wait_ms = self.deadline_at.saturating_sub(now) / 2;
                            return Decision::Slot { route, ask, wait_ms };
                        }
                        None => return self.send(shared, from, route, moved, now),
                    },
                    // A cooling longer than maxRetryAfterMs is a hint not to be waited for.
                    Err((ms, WaitCause::Cooling)) if ms > self.cfg.max_retry_after_ms => {
                        cooling_long = Some(cooling_long.map_or(ms, |c| c.min(ms)));
                    }
                    Err((ms, cause)) if soonest.is_none_or(|s| ms < s.1) => soonest = Some((route, ms, cause)),
                    Err(_) => {}
                }
            }
        }
        match soonest {
            Some((route, ms, cause)) if now.saturating_add(ms) < self.deadline_at => {
                // (The wait said, and the wait slept.)
                let (said, ms) = match (cause, self.reserved) {
                    // Still in line, asked again as the last wait ended: said once.
                    (WaitCause::Pacing, Some((r, slot))) if r == route => (None, in_line(slot, ms)),
                    // Held (a spent limit) while its slots are shared: the slot is asked for after.
                    (WaitCause::Pacing, _) if self.shared_ask(shared, route, now).is_some() => (Some(ms), ms),
                    (WaitCause::Pacing, _) => {
                        let pacer = &mut shared.health(&self.routes[route].key).pacer;
                        let slot = pacer.reserve(now);
                        self.reserved = Some((route, slot));
                        let ms = pacer.slot_of(slot, now) - now;
                        (Some(ms), in_line(slot, ms))
                    }
                    _ => (Some(ms), ms),
                };
                self.wait(from, moved, route, said, ms, cause)
            }
            _ if self.report.attempts.is_empty() && (soonest.is_some() || cooling_long.is_some()) => {
                let (retry_in_ms, cause) = match (soonest, cooling_long) {
                    (Some((_, ms, cause)), Some(c)) if ms <= c => (ms, cause),
                    (_, Some(c)) => (c, WaitCause::Cooling),
                    (Some((_, ms, cause)), None) => (ms, cause),
                    (None, None) => (0, WaitCause::Breaker),
                };
                self.skip_from(shared, from, self.routes.len(), now);
                let reason = match cause {
                    WaitCause::Cooling => Reason::Cooling,
                    WaitCause::Pacing => Reason::Pacing,
                    _ => Reason::CircuitOpen,
                };
                self.finish(Outcome::CircuitOpen { retry_in_ms, reason }, now)
            }
            _ => {
                let reason = match moved {
                    Some((_, reason)) if now < self.deadline_at => reason,
                    _ => Reason::Deadline,
                };
                self.finish(Outcome::Exhausted(reason), now)
            }
        }
    }

    /// Whether `route` can take a request now, or in how long and why not. Changes nothing, but
    /// that a pacing slot held for a route that is now open is void, and a cooling route's
    /// pacing waits for the cooling's end (see [`Pacer::pause`]).
    fn check(&mut self, shared: &mut Shared, route: usize, now: u64) -> Result<(), (u64, WaitCause)> {
        let (pacing, share) = (shared.pacing, shared.share_pacing);
        let h = shared.health(&self.routes[route].key);
        if let Some(Admit::No { retry_in_ms, why }) = h.breaker.as_ref().map(|b| b.check(now)) {
            // A place in line (a rate learned from 429s) waits out the cooling; a time is void.
            let in_line = matches!(self.reserved, Some((r, Slot::InLine { .. })) if r == route);
            if why == Refusal::Cooling && in_line {
                h.pacer.pause(now.saturating_add(retry_in_ms), now);
            } else if self.reserved.is_some_and(|(r, _)| r == route) {
                self.reserved = None;
            }
            let cause = if why == Refusal::Cooling { WaitCause::Cooling } else { WaitCause::Breaker };
            return Err((retry_in_ms, cause));
        }
        if let Some((r, slot)) = self.reserved {
            if r == route {
                // Woken a little early (host timers round), or the rate changed: the place in
                // line held is still the one to wait for.
                let at = h.pacer.slot_of(slot, now);
                return if at <= now { Ok(()) } else { Err((at - now, WaitCause::Pacing)) };
            }
        }
        let slot = match () {
            _ if !pacing => now,
            // A shared bucket gives the slot (asked before the send): only a hold is this pacer's.
            _ if share && h.pacer.shared_ask(now).is_some() => h.pacer.held(now),
            _ => h.pacer.next_slot(now),
        };
        if slot > now {
            return Err((slot - now, WaitCause::Pacing));
        }
        Ok(())
    }

    /// What to ask the shared bucket before sending on `route`, when it must be asked: pacing is
    /// shared, the route is busy, and this call holds no slot for it yet.
    fn shared_ask(&mut self, shared: &mut Shared, route: usize, now: u64) -> Option<Ask> {
        if !shared.share_pacing || self.reserved.is_some_and(|(r, _)| r == route) {
            return None;
        }
        shared.health(&self.routes[route].key).pacer.shared_ask(now)
    }

    /// Emits a `Skip` for each route in `from..to` that cannot take a request now.
    fn skip_from(&mut self, shared: &mut Shared, from: usize, to: usize, now: u64) {
        for route in from..to {
            if let Err((retry_in_ms, cause)) = self.check(shared, route, now) {
                self.report.skipped.push(route);
                self.event(Event::Skip { route, retry_in_ms, cause });
            }
        }
    }

    /// Sends on `route`, which [`Self::check`] admitted; `from` is where the search began.
    fn send(
        &mut self,
        shared: &mut Shared,
        from: usize,
        route: usize,
        moved: Option<(usize, Reason)>,
        now: u64,
    ) -> Decision {
        let last = self.report.attempts.last().copied();
        // Routes passed over for this one, but the one being left (its `fallback` event says why).
        let leaving = (route != self.route && last.is_some()).then_some(self.route);
        let left_because = match moved {
            Some((_, reason)) => reason,
            None => match self.check(shared, self.route, now) {
                Err((_, WaitCause::Cooling)) => Reason::Cooling,
                Err((_, WaitCause::Pacing)) => Reason::Pacing,
                _ => Reason::CircuitOpen,
            },
        };
        for r in (from..route).filter(|&r| Some(r) != leaving) {
            self.skip_from(shared, r, r + 1, now);
        }
        let pacing = shared.pacing;
        let h = shared.health(&self.routes[route].key);
        match self.reserved.take() {
            Some((r, _)) if r == route => {}
            _ if pacing => {
                h.pacer.reserve(now);
            }
            _ => {}
        }
        let limits = pacing && h.pacer.wants_limits(now);
        let change = h.breaker.as_mut().and_then(|b| b.admit(now));
        self.note_change(shared, route, change);
        let waited_ms = now.saturating_sub(self.since);
        self.report.total_wait_ms = self.report.total_wait_ms.saturating_add(waited_ms);
        if route != self.route || last.is_none() {
            if let (Some(last), Some(from)) = (last, leaving) {
                self.event(Event::Fallback { from, to: route, reason: left_because, status: last.status });
            }
            self.report.fallback |= route > 0;
            self.route = route;
            self.route_attempts = 0;
            self.prev_delay = 0;
        } else if let Some(last) = last {
            let attempt = self.report.attempts.len() as u32;
            let (reason, status, cause) = (last.reason, last.status, self.last_cause);
            self.event(Event::Retry { attempt, route, delay_ms: waited_ms, reason, status, cause });
        }
        self.route_attempts += 1;
        let deadline_ms = self.deadline_at.saturating_sub(now);
        let (timeout_ms, deadline_bound) = match (self.cfg.attempt_timeout_ms, self.cfg.deadline_cuts_attempts) {
            (Some(t), true) if t < deadline_ms => (Some(t), false),
            (_, true) => (Some(deadline_ms), true),
            (t, false) => (t, t.is_none()),
        };
        self.phase = Phase::Attempting { route, deadline_bound };
        self.pending_waited = waited_ms;
        let attempt = self.report.attempts.len() as u32 + 1;
        self.event(Event::Attempt { attempt, route });
        Decision::Attempt { route, attempt, timeout_ms, deadline_ms, limits }
    }

    fn observe(
        &mut self,
        shared: &mut Shared,
        route: usize,
        deadline_bound: bool,
        obs: &Observation,
        now: u64,
        rand: impl Random,
    ) -> Decision {
        let (class, reason) = classify(obs, &self.cfg.retry_on, self.idempotent);
        let waited_ms = core::mem::take(&mut self.pending_waited);
        let in_stream = obs.in_stream();
        self.report.attempts.push(AttemptRecord { route, status: obs.status(), reason, waited_ms, in_stream });
        if let Observation::Committed { .. } = obs {
            let first_token_ms = now.saturating_sub(self.report.started_ms);
            self.report.first_token_ms = Some(first_token_ms);
            let attempt = self.report.attempts.len() as u32;
            self.event(Event::Commit { route, attempt, first_token_ms });
        }
        self.since = now;
        // The server's wait hint, read once: for pacing (a 429's pause) and the retry's wait.
        let hint = match class {
            Class::Transient => obs.response().and_then(|(status, headers, _)| hints::wait_hint(headers, status, now)),
            _ => None,
        };
        self.record_health(shared, route, (class, reason), obs, hint, now);
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
            Class::RouteFailure => self.seek(shared, route + 1, Some((route, reason)), now),
            Class::Transient => self.plan_retry(shared, route, hint, reason, now, rand),
        }
    }

    fn plan_retry(
        &mut self,
        shared: &mut Shared,
        route: usize,
        hint: Option<Hint>,
        reason: Reason,
        now: u64,
        rand: impl Random,
    ) -> Decision {
        // A failure takes a token, but for a rate limit that said when to come back or whose
        // retries are paced: those are sent when the provider can take them, not blindly.
        let paced = reason == Reason::RateLimited && (hint.is_some() || shared.pacing);
        if let (Some(budget), false) = (shared.budget.as_mut(), paced) {
            budget.record_failure();
        }
        let h = shared.health(&self.routes[route].key);
        if let (Some(hint), Some(429)) = (hint, self.last_status()) {
            if let Some(b) = h.breaker.as_mut() {
                b.cool_until(now.saturating_add(hint.ms.min(MAX_MS)));
            }
        }
        let opened = h.breaker.as_ref().is_some_and(|b| b.state() == State::Open);
        let move_on = |s: &mut Self, shared: &mut Shared, why| s.seek(shared, route + 1, Some((route, why)), now);
        if self.route_attempts >= self.routes[route].max_attempts {
            return move_on(self, shared, Reason::AttemptsExhausted);
        }
        if hint.is_some_and(|h| h.ms > self.cfg.max_retry_after_ms) {
            return move_on(self, shared, Reason::HintTooLong);
        }
        // This failure opened the route's breaker (or failed its probe): take a later route that
        // is ready, or wait in line for this one — after the server's hint, if it gave one, which
        // a short cooldown must not undercut.
        if opened {
            let moved = Some((route, Reason::CircuitOpen));
            if hint.is_none() {
                return self.seek(shared, route, moved, now);
            }
            let ready =
                (route + 1..self.routes.len()).find(|&r| now < self.deadline_at && self.check(shared, r, now).is_ok());
            if let Some(ready) = ready {
                return self.send(shared, route, ready, moved, now);
            }
        }
        let (ms, cause) = match hint {
            Some(h) => {
                let jitter = (h.ms as f64 * HINT_JITTER).min(HINT_JITTER_MAX_MS as f64) * rand.get().clamp(0.0, 1.0);
                (h.ms.saturating_add(jitter as u64), WaitCause::Hint(h.source))
            }
            None if !paced && shared.budget.as_ref().is_some_and(|b| !b.can_retry()) => {
                return move_on(self, shared, Reason::BudgetExhausted);
            }
            None => {
                let backoff = self.cfg.backoff.delay(self.route_attempts, self.prev_delay, rand.get());
                self.prev_delay = backoff;
                (backoff, WaitCause::Backoff)
            }
        };
        if now.saturating_add(ms) >= self.deadline_at {
            let why = if cause == WaitCause::Backoff { Reason::Deadline } else { Reason::HintTooLong };
            return move_on(self, shared, why);
        }
        let waiting = self.wait(route, None, route, Some(ms), ms, cause);
        // A wait of 0 (a backoff of 0, `Retry-After: 0`) is no wait: its event is told, and the
        // next step is decided now rather than after a host timer of 0, which still costs a turn
        // of the event loop (1 ms in Node, up to 4 in a browser). `seek` decides a send, a wait
        // in line or the end, never a wait of this kind: this cannot loop.
        if ms == 0 {
            return self.seek(shared, route, None, now);
        }
        waiting
    }

    fn wait(
        &mut self,
        from: usize,
        moved: Option<(usize, Reason)>,
        route: usize,
        said: Option<u64>,
        ms: u64,
        cause: WaitCause,
    ) -> Decision {
        self.last_cause = cause;
        if let Some(delay_ms) = said {
            self.event(Event::Wait { route, delay_ms, cause });
        }
        self.phase = Phase::Waiting { from, moved };
        Decision::Wait { ms, cause }
    }

    fn record_health(
        &mut self,
        shared: &mut Shared,
        route: usize,
        (class, reason): (Class, Reason),
        obs: &Observation,
        hint: Option<Hint>,
        now: u64,
    ) {
        let failed = matches!(class, Class::Transient | Class::RouteFailure) || reason == Reason::TimeoutNotIdempotent;
        // A rate limit says "slow down", not "down": it neither counts toward nor resets the
        // breaker's run of failures. (Failures take from the budget in `plan_retry`.)
        let rate_limited = reason == Reason::RateLimited;
        if let (Some(budget), Class::Success) = (shared.budget.as_mut(), class) {
            budget.record_success();
        }
        let pacing = shared.pacing;
        let h = shared.health(&self.routes[route].key);
        if pacing {
            if let Some((_, headers, _)) = obs.response() {
                let limits = hints::limits(headers, now);
                if let Some(limits) = &limits {
                    h.pacer.observe_limits(limits, now);
                }
                h.pacer.limits_seen(limits.is_some());
            }
            if rate_limited {
                h.pacer.rate_limited(now, hint.map_or(0, |h| h.ms));
            } else if obs.response().is_some() {
                h.pacer.served(now);
            }
        }
        let Some(breaker) = h.breaker.as_mut() else {
            return;
        };
        let change = match class {
            _ if class == Class::Abort || rate_limited => {
                let released = breaker.state() == State::HalfOpen;
                breaker.release_probe();
                if released {
                    shared.woken.push(self.routes[route].key.clone());
                }
                None
            }
            _ if failed => breaker.record_failure(now),
            _ => breaker.record_success(now),
        };
        self.note_change(shared, route, change);
    }

    fn note_change(&mut self, shared: &mut Shared, route: usize, change: Option<(State, State)>) {
        if let Some((from, to)) = change {
            let key = self.routes[route].key.clone();
            if to == State::Closed {
                shared.woken.push(key.clone());
            }
            self.event(Event::Breaker { key, from, to });
        }
    }

    fn last_status(&self) -> Option<u16> {
        self.report.attempts.last().and_then(|a| a.status)
    }

    fn finish(&mut self, outcome: Outcome, now: u64) -> Decision {
        if let Phase::Waiting { .. } = self.phase {
            self.report.total_wait_ms = self.report.total_wait_ms.saturating_add(now.saturating_sub(self.since));
        }
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
            Outcome::CircuitOpen { reason, .. } => Some(Event::GiveUp { reason, attempts, status: None }),
            Outcome::Aborted => None,
        };
        if let Some(e) = event {
            self.event(e);
        }
        self.phase = Phase::Done(outcome);
        Decision::Done(outcome)
    }
}
