//! The driver: a short loop that executes the engine's decisions against the host.
//! `fetch` and `retry(fn)` differ only in how one attempt is made ([`Attempts`]).

use alloc::{boxed::Box, rc::Rc, vec::Vec};
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::errors::{self, get};
use super::host::{self, Either, Notify, Rng};
use super::options::{self, Options};
use super::values;
use crate::policy::classify::Observation;
use crate::policy::config::{Config, MAX_ATTEMPTS};
use crate::policy::engine::{Decision, Outcome, Report, Route, Session, Shared, WaitCause};
use crate::policy::health::Record;

/// One client: validated options plus the health state all its calls share.
pub struct Client {
    pub opts: Options,
    pub shared: RefCell<Shared>,
    rng: Rng,
    /// Wakes the calls waiting for a breaker when a route may admit sooner.
    breaker_waits: Notify,
    /// `retryFetch` calls whose first attempt is out on the fast path (`fetch.rs`), by id.
    pub parked: super::fetch::Parked,
    /// Route keys by their number (`names.js` keyId) in the client's table `gen` (`keyTable`):
    /// each kept once, handed to every call.
    keys: RefCell<Vec<Rc<str>>>,
    gen: Cell<u32>,
}

impl Client {
    pub fn new(opts: Options) -> Self {
        let mut shared = Shared::new(&opts.cfg);
        if opts.share_pacing {
            shared.share_pacing();
        }
        Self {
            opts,
            shared: RefCell::new(shared),
            rng: Rng::default(),
            breaker_waits: Notify::default(),
            parked: Default::default(),
            keys: RefCell::default(),
            gen: Cell::new(0),
        }
    }

    /// The route key of number `id` in table `gen` of call `call`, asked of `names.js` the first
    /// time (an unknown number: ""). A newer table than the last forgets the keys of the tables
    /// before; a call numbered in an older one (its body read while a newer began) is named from
    /// its own table, its keys not kept.
    fn key(&self, id: f64, gen: u32, call: &JsValue) -> Rc<str> {
        let id = if (0.0..u32::MAX as f64).contains(&id) { id as usize } else { return Rc::from("") };
        let Ok(mut keys) = self.keys.try_borrow_mut() else { return Rc::from("") };
        if gen != self.gen.get() {
            if gen < self.gen.get() {
                return values::key_name(call, id as u32).map_or_else(|| Rc::from(""), Rc::from);
            }
            self.gen.set(gen);
            *keys = Vec::new();
        }
        let new = keys.len() <= id;
        while keys.len() <= id {
            match values::key_name(call, keys.len() as u32) {
                Some(name) => keys.push(Rc::from(name)),
                None => return Rc::from(""),
            }
        }
        // A client with many routes (a gateway passing its users' models on) indexes them by a
        // hash, seeded from the host's crypto so that keys made to collide cannot be sent in:
        // asked when a key is new, so a call on a known one pays nothing for it.
        if new {
            if let Ok(mut shared) = self.shared.try_borrow_mut() {
                if shared.needs_seed() {
                    shared.seed((self.rng.next_f64() * 4_294_967_296.0) as u32 | 1);
                }
            }
        }
        keys[id].clone()
    }
}

/// Routes a call's shape carries at most (`names.js` SHAPE_ROUTES).
const SHAPE_ROUTES: usize = 16;

/// Where a call's own settings start in its shape (when it has any: flag 4).
const SHAPE_CALL: usize = 2 + 2 * SHAPE_ROUTES;
pub const SHAPE_LEN: usize = SHAPE_CALL + options::CALL_LEN;

/// A call's shape as `names.js` writes it (`shape`): `[flags, routes, keyId, attempts, …]`, then
/// its own settings (options.rs [`options::CALL_LEN`]).
pub type Shape = [f64; SHAPE_LEN];

/// The index of `slots` in the wasm's memory seen as f64s, where JavaScript writes numbers for
/// the wasm (a call's shape: `readRequest`, `shape`; the options: `checkOptions`). The address
/// leaves as a number, so the compiler takes the call it is passed to as writing them.
pub fn slots_at(slots: &mut [f64]) -> u32 {
    (slots.as_mut_ptr() as usize / core::mem::size_of::<f64>()) as u32
}

/// A call as `request.js` and `run.js` name it (`readRequest`, `fnCall`): its routes' breaker `keys` and own
/// `attempts`, the object itself (`js`: its id and each route's model, for events and reports),
/// its settings when its per-call options override the client's, and whether it is safe to
/// repeat and has a signal.
pub struct Names {
    /// Each route's key and own attempts (one list: one allocation a call).
    routes: Vec<(Rc<str>, Option<u32>)>,
    pub js: JsValue,
    cfg: Option<Config>,
    pub idempotent: bool,
    pub has_signal: bool,
}

impl Names {
    /// The names of a call object, its shape asked for.
    pub fn read(v: JsValue, client: &Client) -> Result<Self, JsValue> {
        let mut shape: Shape = [0.0; SHAPE_LEN];
        values::shape(&v, slots_at(&mut shape));
        Self::from_shape(v, &shape, client)
    }

    /// The names of call object `v` whose shape was written already.
    pub fn from_shape(v: JsValue, shape: &Shape, client: &Client) -> Result<Self, JsValue> {
        let flags = shape[0] as u32;
        let gen = flags >> 4;
        let own = |n: f64| n.is_finite().then(|| (n as u32).clamp(1, MAX_ATTEMPTS));
        // Loops rather than `collect`s: each of those is code of its own for its iterator.
        let mut routes = Vec::new();
        if flags & 8 == 0 {
            let n = (shape[1] as usize).min(SHAPE_ROUTES);
            routes.reserve_exact(n);
            for i in 0..n {
                routes.push((client.key(shape[2 + 2 * i], gen, &v), own(shape[3 + 2 * i])));
            }
        } else {
            // More routes than a shape holds: read from the object.
            let array = |k| get(&v, k).dyn_into::<Array>().unwrap_or_else(|_| Array::new());
            let (ids, attempts) = (array("ids"), array("attempts"));
            let at = |a: &Array, i| a.get(i).as_f64().unwrap_or(f64::NAN);
            for i in 0..ids.length() {
                routes.push((client.key(at(&ids, i), gen, &v), own(at(&attempts, i))));
            }
        }
        let cfg = match flags & 4 {
            0 => None,
            _ => Some(options::per_call(&client.opts.cfg, &shape[SHAPE_CALL..], &v)?),
        };
        Ok(Self { routes, js: v, cfg, idempotent: flags & 1 != 0, has_signal: flags & 2 != 0 })
    }

    /// Route `route`'s key, as JavaScript has it.
    pub fn key_js(&self, route: usize) -> JsValue {
        self.routes.get(route).map_or(JsValue::UNDEFINED, |(k, _)| JsValue::from_str(k))
    }

    /// This call's settings: the client's, or its own where it overrides them.
    pub fn cfg<'a>(&'a self, client: &'a Client) -> &'a Config {
        self.cfg.as_ref().unwrap_or(&client.opts.cfg)
    }

    /// The engine's routes: one per key, with the call's attempts or the fallback's own.
    fn routes(&self, cfg: &Config) -> Vec<Route> {
        let mut routes = Vec::with_capacity(self.routes.len());
        for (key, own) in &self.routes {
            routes.push(Route::new(key.clone(), own.unwrap_or(cfg.max_attempts)));
        }
        routes
    }
}

/// What an attempt left for the caller, should it be the last.
pub enum Held {
    Nothing,
    /// A response (fetch), or the function's result.
    Value(JsValue),
    /// What the attempt threw. `has_status`: an HTTP error from an SDK, rethrown untouched
    /// when the call ends on it.
    Error {
        error: JsValue,
        has_status: bool,
    },
}

/// One attempt's result; `Err` ends the call with that error, untouched.
pub type AttemptResult = Result<(Observation, Held), JsValue>;

/// How one attempt is made. Used as `dyn`, so the driver exists once in the wasm.
pub trait Attempts {
    fn names(&self) -> &Names;
    /// `limits`: whether a success's rate-limit headers are worth reading (`Decision::Attempt`).
    fn attempt(
        &mut self,
        route: usize,
        attempt: u32,
        timeout_ms: Option<u64>,
        deadline_ms: u64,
        limits: bool,
    ) -> Pin<Box<dyn Future<Output = AttemptResult> + '_>>;
    /// The held value is superseded by a new attempt: free what it holds.
    fn release(&mut self, _held: Held) {}
}

/// Runs one call to its end.
pub async fn drive(
    client: &Client,
    a: &mut dyn Attempts,
    idempotent: bool,
    signal: Option<&AbortSignal>,
) -> Result<JsValue, JsValue> {
    if let Some(wait) = health_wait(client, a) {
        let _ = host::settled(&wait).await;
    }
    let session = start(client, a, idempotent, signal)?;
    resume(client, a, session, None, None, Held::Nothing, signal).await
}

/// While a client has never read its shared health, the wait (at most health.firstReadMs) a call
/// makes for the first read; later reads are made in the background.
pub fn health_wait(client: &Client, a: &dyn Attempts) -> Option<Promise> {
    if !client.opts.health {
        return None;
    }
    values::health_before(&client.opts.js, &a.names().js).dyn_into().ok()
}

/// A new call's session; the caller's reason when its signal is already aborted.
pub fn start(
    client: &Client,
    a: &dyn Attempts,
    idempotent: bool,
    signal: Option<&AbortSignal>,
) -> Result<Session, JsValue> {
    if let Some(s) = signal.filter(|s| values::is_aborted(s)) {
        return Err(s.reason());
    }
    let names = a.names();
    let cfg = names.cfg(client);
    let mut session = Session::new(cfg, names.routes(cfg), idempotent);
    if client.opts.on_event.is_none() {
        session.keep_no_events();
    }
    Ok(session)
}

/// The engine's next decision, with what was `seen` of the last attempt; its events told.
pub fn decide(client: &Client, session: &mut Session, seen: Option<&Observation>, a: &dyn Attempts) -> Decision {
    decide_at(client, session, seen, a, host::now_ms())
}

/// [`decide`] at time `now` (ms since the epoch), read by the caller.
pub fn decide_at(
    client: &Client,
    session: &mut Session,
    seen: Option<&Observation>,
    a: &dyn Attempts,
    now: u64,
) -> Decision {
    let decision = {
        let mut shared = client.shared.borrow_mut();
        let d = session.next(&mut shared, seen, now, || client.rng.next_f64());
        let woken = shared.take_woken();
        if !woken.is_empty() {
            client.breaker_waits.notify(&woken);
        }
        if client.opts.health {
            tell(client, &mut shared);
        }
        d
    };
    emit(client, session, a);
    decision
}

/// The attempt out ends the call with an error of its own (its request could not be built or
/// fetch refused it, or `fn` threw what is not an outcome): nothing is learned from it, but the
/// engine is told, as of an abort, so that what the attempt held (a half-open breaker's probe)
/// is given back at once rather than after a cooldown.
pub fn abandon(client: &Client, session: &mut Session, a: &dyn Attempts) {
    decide(client, session, Some(&Observation::Aborted), a);
}

/// Carries a call on to its end from where it is: `first`, a decision already taken (else the
/// engine is asked), and what was `seen` of and `held` from the last attempt.
pub async fn resume(
    client: &Client,
    a: &mut dyn Attempts,
    mut session: Session,
    mut first: Option<Decision>,
    mut seen: Option<Observation>,
    mut held: Held,
    signal: Option<&AbortSignal>,
) -> Result<JsValue, JsValue> {
    loop {
        let decision = match first.take() {
            Some(d) => d,
            None => decide(client, &mut session, seen.as_ref(), a),
        };
        match decision {
            Decision::Attempt { route, attempt, timeout_ms, deadline_ms, limits } => {
                a.release(core::mem::replace(&mut held, Held::Nothing));
                // Aborted since the call last waited (by code `onEvent` ran, or while an attempt
                // whose transport ignored the signal was out): nothing more is sent.
                if let Some(s) = signal.filter(|s| values::is_aborted(s)) {
                    abandon(client, &mut session, a);
                    return Err(s.reason());
                }
                let (obs, h) = match a.attempt(route, attempt, timeout_ms, deadline_ms, limits).await {
                    Ok(r) => r,
                    Err(e) => {
                        abandon(client, &mut session, a);
                        return Err(e);
                    }
                };
                seen = Some(obs);
                held = h;
            }
            Decision::Slot { route, ask, wait_ms } => {
                let key = a.names().key_js(route);
                let within = ask.within.map(|w| w as f64);
                let slot = values::health_pace(&client.opts.js, &key, ask.interval, ask.burst, ask.tat, within, signal);
                let at = match slot.dyn_into::<Promise>() {
                    Ok(p) => match host::race(host::settled(&p), host::delay(wait_ms)).await {
                        Either::Left(Ok(at)) => at.as_f64(),
                        Either::Left(Err(reason)) => {
                            a.release(held);
                            return Err(reason);
                        }
                        // The store too slow for this call's deadline: its own pacer decides.
                        Either::Right(()) => None,
                    },
                    Err(_) => None,
                };
                session.grant(at.filter(|t| t.is_finite() && *t >= 0.0).map(|t| t as u64));
            }
            Decision::Wait { ms, cause } => {
                let woken = (cause == WaitCause::Breaker).then(|| client.breaker_waits.wait(session.keys()));
                if let Err(reason) = host::sleep(ms, signal, woken).await {
                    a.release(held);
                    return Err(reason);
                }
            }
            Decision::Done(outcome) => {
                let report = session.into_report();
                let result = finish(client, a, outcome, held, &report, signal).await;
                let ended = match &result {
                    Ok(v) | Err(v) => v,
                };
                keep_report(a, &report, ended);
                return result;
            }
        }
    }
}

/// Hands what the breakers learned since last asked to the client's health store (`health.js`
/// batches and writes it in the background).
fn tell(client: &Client, shared: &mut Shared) {
    let changed = shared.changed();
    if changed.is_empty() {
        return;
    }
    let flat = Array::new();
    for (key, r) in changed {
        values::push(&flat, &key.into());
        for t in [r.opened_at, r.open_until, r.closed_at, r.cooled_until] {
            values::push(&flat, &(t as f64).into());
        }
    }
    values::health_tell(&client.opts.js, &flat);
}

/// Adopts records other instances told (`[key, openedAt, openUntil, closedAt, cooledUntil, …]`,
/// read from the client's health store); wakes the calls waiting for a route that closed.
pub fn adopt(client: &Client, flat: &Array) {
    let now = host::now_ms();
    let at = |i| flat.get(i).as_f64().filter(|t| t.is_finite() && *t > 0.0).map_or(0, |t| t as u64);
    let woken = {
        let mut shared = client.shared.borrow_mut();
        for i in (0..flat.length().saturating_sub(4)).step_by(5) {
            if let Some(key) = flat.get(i).as_string() {
                let r = Record {
                    opened_at: at(i + 1),
                    open_until: at(i + 2),
                    closed_at: at(i + 3),
                    cooled_until: at(i + 4),
                };
                shared.adopt(&key, r, now);
            }
        }
        shared.take_woken()
    };
    if !woken.is_empty() {
        client.breaker_waits.notify(&woken);
    }
}

/// Keeps the call's report for `ended` (what it returned or threw), unbuilt: `report.js` ignores
/// a value that is not an object, and builds the report only when `retryReport` asks.
pub fn keep_report(a: &dyn Attempts, report: &Report, ended: &JsValue) {
    match (&report.attempts[..], &report.skipped[..]) {
        // The common call: plain numbers, no list made here nor copied out of the wasm.
        ([attempt], []) => {
            let [wait, duration, route, fallback, first_token, _] = errors::report_head(report);
            let [a_route, status, reason, waited, in_stream] = errors::attempt_numbers(attempt);
            values::keep_report1(
                &a.names().js,
                ended,
                wait,
                duration,
                route,
                fallback,
                first_token,
                a_route,
                status,
                reason,
                waited,
                in_stream,
            )
        }
        _ => values::keep_report(&a.names().js, &errors::flat_report(report), ended),
    }
}

fn emit(client: &Client, session: &mut Session, a: &dyn Attempts) {
    while let Some(e) = session.poll_event() {
        if let Some(f) = &client.opts.on_event {
            // A throwing listener must not break the call.
            let _ = f.call1(&JsValue::UNDEFINED, &errors::event(&e, &a.names().js));
        }
    }
}

async fn finish(
    client: &Client,
    a: &mut dyn Attempts,
    outcome: Outcome,
    held: Held,
    report: &Report,
    signal: Option<&AbortSignal>,
) -> Result<JsValue, JsValue> {
    // Built only on the failure paths that hand it out.
    let report_js = || errors::report(report, &a.names().js);
    let (reason, exhausted) = match outcome {
        Outcome::Success => {
            return match held {
                Held::Value(v) => Ok(v),
                _ => Ok(JsValue::UNDEFINED),
            }
        }
        Outcome::Aborted => {
            a.release(held);
            let reason = signal.map(|s| s.reason());
            return Err(reason.unwrap_or_else(|| errors::type_error("aborted")));
        }
        Outcome::CircuitOpen { reason, .. } => (reason, true),
        Outcome::Returned(reason) => (reason, false),
        Outcome::Exhausted(reason) => (reason, true),
    };
    if exhausted {
        if let Some(v) = last_resort(&client.opts.on_exhausted, &report_js()).await? {
            a.release(held);
            return Ok(v);
        }
    }
    if let Outcome::CircuitOpen { retry_in_ms, reason } = outcome {
        return Err(errors::circuit_open_error(retry_in_ms, reason, &report_js()));
    }
    match held {
        Held::Value(v) => Ok(v),
        // An HTTP error from an SDK is handed back as is, as fetch hands back the last Response,
        // so the SDK's typed errors keep working; `retryReport(error)` tells the attempts.
        Held::Error { error, has_status: true } => Err(error),
        Held::Error { error, .. } => Err(errors::retry_error(reason, report, &error, &report_js())),
        Held::Nothing => Err(errors::retry_error(reason, report, &JsValue::UNDEFINED, &report_js())),
    }
}

/// `onExhausted(report)`: a value it returns (or resolves to) becomes the result.
async fn last_resort(hook: &Option<Function>, report: &JsValue) -> Result<Option<JsValue>, JsValue> {
    let Some(f) = hook else { return Ok(None) };
    let v = f.call1(&JsValue::UNDEFINED, report)?;
    let v = host::settled(&v).await?;
    Ok((!v.is_undefined() && !v.is_null()).then_some(v))
}
