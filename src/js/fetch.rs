//! `retryFetch(input, init)`: the request is read once by `request.js` (`readRequest`), which
//! also builds what each route sends (`routeRequest`: a fallback's URL, headers and model, and
//! credentials dropped on the way to another origin); this drives the attempts.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, OnceCell, RefCell};
use core::future::Future;
use core::pin::Pin;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, Response};

use super::drive::{self, AttemptResult, Attempts, Client, Held, Names, Shape};
use super::errors;
use super::host::{self, AttemptSignal, Either};
use super::{task, values};
use crate::policy::classify::Observation;
use crate::policy::engine::{Decision, Outcome, Session};
use crate::policy::stream::{State, Watch};
use crate::policy::Headers;

/// A `retryFetch` call. The common case — a request read at once, a first attempt to send at
/// once — takes the fast path: the engine's first decision is asked here, the request sent (with
/// a signal and a timer of its own when the attempt has a timeout), and the call parked until the
/// transport settles, when [`settle`] (through the client's one callback) asks the engine what it
/// makes of the response. No Rust future, closure or promise of its own is made for it; anything
/// but a plain success from there (a failure, an event stream) goes on in the same driver as
/// every other call.
pub fn fetch(client: &Rc<Client>, input: &JsValue, init: &JsValue, now: f64) -> Result<Promise, JsValue> {
    let mut shape: Shape = [0.0; drive::SHAPE_LEN];
    let request = values::read_request(input, init, &client.opts.js, drive::slots_at(&mut shape));
    if shape[0] == values::THREW {
        return Err(request);
    }
    // A promise only when a body had to be read first.
    if shape[0] < 0.0 {
        return Ok(carry(client, Next::Read(request.unchecked_into())));
    }
    let (call, idempotent) = Call::new(client.clone(), request, Some(&shape))?;
    if let Some(wait) = drive::health_wait(client, &call) {
        return Ok(carry(client, Next::Health { wait, call, idempotent }));
    }
    let mut session = drive::start(client, &call, idempotent, call.signal.as_ref())?;
    match drive::decide_at(client, &mut session, None, &call, host::ms(now)) {
        Decision::Attempt { route, timeout_ms, deadline_ms, limits, .. } => {
            let own = timeout_ms.map(|ms| OwnSignal::new(ms, call.signal.as_ref()));
            let request = call.request.clone();
            let signal = own.as_ref().map(|o| o.sig.signal.clone());
            let id = client.parked.park(Box::new(Parked1 { call, session, route, deadline_ms, limits, own }));
            let transport = client.opts.transport.as_ref();
            let sent = client.parked.settle_fn(client, |f| {
                values::send_parked(&request, route as u32, signal.as_ref(), transport, id, limits, f)
            });
            Ok(sent.unchecked_into())
        }
        first => Ok(carry(client, Next::Decided { call, session, first, seen: None, held: Held::Nothing })),
    }
}

/// Where a call goes on in the driver from.
enum Next {
    /// A request whose body is being read.
    Read(Promise),
    /// A call waiting for its client's first read of shared health (at most health.firstReadMs).
    Health { wait: Promise, call: Call, idempotent: bool },
    /// A decision taken, after what was seen.
    Decided { call: Call, session: Session, first: Decision, seen: Option<Observation>, held: Held },
    /// A parked call's response that must be read first: an event stream (`reader` set: to its
    /// commit point; `limits`: its rate-limit headers read then) or a 429 (its body), under the
    /// attempt's timer when it has one (`own`).
    Read1 {
        call: Call,
        session: Session,
        response: JsValue,
        reader: Option<JsValue>,
        route: usize,
        deadline_ms: u64,
        limits: bool,
        own: Option<OwnSignal>,
    },
}

/// The call, on in the driver, as a promise (one future type for every way there).
fn carry(client: &Rc<Client>, next: Next) -> Promise {
    let client = client.clone();
    task::promise(Box::pin(async move {
        let (mut call, session, first, seen, held) = match next {
            Next::Read(p) => {
                let (mut call, idempotent) = Call::new(client.clone(), host::settled(&p).await?, None)?;
                let signal = call.signal.clone();
                return drive::drive(&client, &mut call, idempotent, signal.as_ref()).await;
            }
            Next::Health { wait, call, idempotent } => {
                let _ = host::settled(&wait).await;
                let session = drive::start(&client, &call, idempotent, call.signal.as_ref())?;
                (call, session, None, None, Held::Nothing)
            }
            Next::Decided { call, session, first, seen, held } => (call, session, Some(first), seen, held),
            Next::Read1 { call, session, response, reader, route, deadline_ms, limits, own } => {
                let response: Response = response.unchecked_into();
                let (obs, held) = match reader {
                    Some(reader) => call.watch(response, reader, own.as_ref(), deadline_ms, route, limits).await,
                    None => (observe(&response, 429).await, Held::Value(response.into())),
                };
                drop(own);
                (call, session, None, Some(obs), held)
            }
        };
        let signal = call.signal.clone();
        drive::resume(&client, &mut call, session, first, seen, held, signal.as_ref()).await
    }))
}

/// The transport of parked call `id` settled with `value`: a response of `status`, a value that
/// is not one (0), or a rejection (-1); or the request could not be built (at once) or fetch
/// refused it ([`values::THREW`]: the call ends with that error). `seen` is what `stream.js` found of a response below
/// 400 (see [`values::success`]). The engine is asked at once (so breakers, budget and pacing see
/// outcomes in the order they arrive); a success ends the call here. Anything else goes on in the
/// driver, as a promise the caller's chains to — and so do the two cases that must read on first:
/// an event stream (to its commit point) and a 429 (its body, for the quota check).
fn settle(client: &Rc<Client>, id: u32, value: JsValue, status: f64, seen: JsValue, now: f64) -> JsValue {
    // Used where it is (boxed): a parked call is ~0.5 KB, and each move of it is a copy.
    let Some(mut p) = client.parked.take(id) else {
        return Promise::reject(&errors::type_error("llm-retry: unknown call")).into();
    };
    let read = |p: Box<Parked1>, response, reader| {
        let Parked1 { call, session, route, deadline_ms, limits, own } = *p;
        Next::Read1 { call, session, response, reader, route, deadline_ms, limits, own }
    };
    let (obs, held) = match status {
        // The route's request failing to build, or fetch refusing it, ends the call, as in the driver.
        s if s == values::THREW => {
            drive::abandon(client, &mut p.session, &p.call);
            return Promise::reject(&value).into();
        }
        s if s < 0.0 => (p.call.failure(p.own.as_ref()), Held::Error { error: value, has_status: false }),
        s if !(100.0..=599.0).contains(&s) => {
            let error = values::not_response(&value);
            (p.call.failure(p.own.as_ref()), Held::Error { error, has_status: false })
        }
        s if s < 400.0 => {
            let Some(headers) = success_headers(&seen) else {
                // An event stream (`seen` is its body reader).
                return carry(client, read(p, value, Some(seen))).into();
            };
            (Observation::Response { status: s as u16, headers, body: None }, Held::Value(value))
        }
        s if s as u16 == 429 => return carry(client, read(p, value, None)).into(),
        s => {
            let obs =
                Observation::Response { status: s as u16, headers: hint_headers(value.unchecked_ref()), body: None };
            (obs, Held::Value(value))
        }
    };
    let first = drive::decide_at(client, &mut p.session, Some(&obs), &p.call, host::ms(now));
    let held = match (&first, held) {
        // The value goes back as it came in (no second handle on it to make and drop).
        (Decision::Done(Outcome::Success), Held::Value(v)) => {
            drive::keep_report(&p.call, p.session.report(), &v);
            return v;
        }
        (_, held) => held,
    };
    let Parked1 { call, session, .. } = *p;
    carry(client, Next::Decided { call, session, first, seen: Some(obs), held }).into()
}

/// A call parked on the fast path: its first attempt is out (`limits`: whether the engine asked
/// for its response's rate-limit headers; `own`: its signal and timer, when it has a timeout).
pub struct Parked1 {
    call: Call,
    session: Session,
    route: usize,
    deadline_ms: u64,
    limits: bool,
    own: Option<OwnSignal>,
}

/// What a parked call's transport settles through: `(id, value, status, seen, now)` (see [`settle`];
/// `now` is `Date.now()` as it settles, read in JavaScript: one crossing fewer, which shows cold).
type SettleFn = Closure<dyn FnMut(u32, JsValue, f64, JsValue, f64) -> JsValue>;

/// The calls parked on the fast path, by id (a slot list reused as calls settle), and the one
/// callback their transports' promises settle through, made on first use.
#[derive(Default)]
pub struct Parked {
    /// Boxed: a client keeps only pointers between calls, not a call's size per slot (a client
    /// made per request is held until the garbage collector finalizes it).
    slots: RefCell<Vec<Option<Box<Parked1>>>>,
    free: RefCell<Vec<u32>>,
    settle: OnceCell<SettleFn>,
}

impl Parked {
    /// Runs `f` with the client's settle callback. It holds the client weakly (the client owns
    /// it); a parked call holds the client, so it is alive whenever the callback can be called.
    fn settle_fn<R>(&self, client: &Rc<Client>, f: impl FnOnce(&Function) -> R) -> R {
        let closure = self.settle.get_or_init(|| {
            let weak = Rc::downgrade(client);
            Closure::new(move |id, value, status, seen, now| match weak.upgrade() {
                Some(client) => settle(&client, id, value, status, seen, now),
                None => Promise::reject(&errors::type_error("llm-retry: client dropped")).into(),
            })
        });
        f(closure.as_ref().unchecked_ref())
    }

    fn park(&self, p: Box<Parked1>) -> u32 {
        let mut slots = self.slots.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(id) => {
                if let Some(slot) = slots.get_mut(id as usize) {
                    *slot = Some(p);
                }
                id
            }
            None => {
                slots.push(Some(p));
                (slots.len() - 1) as u32
            }
        }
    }

    fn take(&self, id: u32) -> Option<Box<Parked1>> {
        let mut slots = self.slots.borrow_mut();
        let p = slots.get_mut(id as usize)?.take()?;
        let mut free = self.free.borrow_mut();
        free.push(id);
        // Nothing parked after a burst: the lists are given back rather than kept at its size.
        if free.len() == slots.len() && slots.capacity() > 64 {
            *slots = Vec::new();
            *free = Vec::new();
        }
        Some(p)
    }
}

struct Call {
    client: Rc<Client>,
    /// What `readRequest` made of the caller's arguments (opaque here).
    request: JsValue,
    names: Names,
    signal: Option<AbortSignal>,
}

impl Call {
    /// The call for a request from `readRequest` (its `shape` when it was written already), and
    /// whether it is safe to repeat.
    fn new(client: Rc<Client>, request: JsValue, shape: Option<&Shape>) -> Result<(Self, bool), JsValue> {
        let names = match shape {
            Some(shape) => Names::from_shape(request.clone(), shape, &client)?,
            None => Names::read(request.clone(), &client)?,
        };
        let signal = names.has_signal.then(|| values::signal_of(&request));
        let idempotent = names.idempotent;
        Ok((Self { client, names, request, signal }, idempotent))
    }
}

impl Attempts for Call {
    fn names(&self) -> &Names {
        &self.names
    }

    fn attempt(
        &mut self,
        route: usize,
        _attempt: u32,
        timeout_ms: Option<u64>,
        deadline_ms: u64,
        limits: bool,
    ) -> Pin<Box<dyn Future<Output = AttemptResult> + '_>> {
        Box::pin(self.attempt_once(route, timeout_ms, deadline_ms, limits))
    }

    fn release(&mut self, held: Held) {
        if let Held::Value(v) = held {
            values::discard(&v);
        }
    }
}

impl Call {
    /// Sends the request on `route`, with the attempt's own signal when it has one (a timeout).
    fn send(&self, route: usize, own: Option<&OwnSignal>) -> Result<Promise, JsValue> {
        // Only an attempt with a timeout has a signal of its own (an AbortController and a timer,
        // its signal following the caller's): without one, the caller's signal (if any) is the
        // attempt's, which also keeps its abort working while the body streams.
        let signal = own.map(|o| &o.sig.signal).or(self.signal.as_ref());
        values::send(&self.request, route as u32, signal, self.client.opts.transport.as_ref())
    }

    async fn attempt_once(
        &mut self,
        route: usize,
        timeout_ms: Option<u64>,
        deadline_ms: u64,
        limits: bool,
    ) -> AttemptResult {
        let own = timeout_ms.map(|ms| OwnSignal::new(ms, self.signal.as_ref()));
        let sent = self.send(route, own.as_ref())?;
        let result = host::settled(&sent).await;
        let r = self.received(result, own.as_ref(), deadline_ms, route, limits).await;
        drop(own);
        r
    }

    /// What the transport's `result` was, as the engine sees it, and what to hold for the caller.
    async fn received(
        &self,
        result: Result<JsValue, JsValue>,
        own: Option<&OwnSignal>,
        deadline_ms: u64,
        route: usize,
        limits: bool,
    ) -> AttemptResult {
        let error = match result {
            // Duck-typed: another fetch implementation's Response is not `instanceof` this one's.
            Ok(v) => match status_of(&v) {
                // A success is final whatever its headers say: only its rate-limit headers (for
                // pacing) are read, in the same call that finds an event stream's body reader.
                Some(status @ ..400) => {
                    let seen = values::success(&v, limits);
                    let response: Response = v.unchecked_into();
                    if let Some(headers) = success_headers(&seen) {
                        return Ok((
                            Observation::Response { status, headers, body: None },
                            Held::Value(response.into()),
                        ));
                    }
                    // A 2xx event stream is read up to its commit point.
                    return Ok(self.watch(response, seen, own, deadline_ms, route, limits).await);
                }
                Some(status) => {
                    let response: Response = v.unchecked_into();
                    return Ok((observe(&response, status).await, Held::Value(response.into())));
                }
                None => values::not_response(&v),
            },
            // Fetch refused the request itself: every attempt would (see `values::refused`).
            Err(e) if values::refused(&e) => return Err(e),
            Err(e) => e,
        };
        Ok((self.failure(own), Held::Error { error, has_status: false }))
    }

    /// What a transport failure was: the caller's abort, the attempt's timeout (`own`: its signal
    /// and timer, when it has one), or the network.
    fn failure(&self, own: Option<&OwnSignal>) -> Observation {
        if self.signal.as_ref().is_some_and(values::is_aborted) {
            Observation::Aborted
        } else if own.is_some_and(OwnSignal::timed_out) {
            Observation::Timeout
        } else {
            Observation::NetworkError
        }
    }

    /// Reads an event stream until it commits (its first content event), fails in-band, stalls
    /// past `firstTokenTimeoutMs`, or breaks (see `policy::stream`). The chunks read are held:
    /// the Response the caller may get starts with them. A committed stream's rate-limit headers
    /// are read when the engine asked for them (`limits`), as a plain success's are.
    ///
    /// The headers have arrived, so the attempt's own timer (`own`: `attemptTimeoutMs`, or a
    /// deadline the caller set) is cleared: from here the wait for the first token is bounded by
    /// `firstTokenTimeoutMs` and the deadline. The caller's abort ends the wait at once, whether
    /// or not the transport's body heeds the signal.
    async fn watch(
        &self,
        response: Response,
        reader: JsValue,
        own: Option<&OwnSignal>,
        deadline_ms: u64,
        route: usize,
        limits: bool,
    ) -> (Observation, Held) {
        if let Some(own) = own {
            own.disarm();
        }
        let cfg = self.names.cfg(&self.client);
        let stall = host::first_token(cfg.first_token_timeout_ms, deadline_ms);
        let mut stop = host::race(stall, host::aborted(self.signal.as_ref()));
        let held = js_sys::Array::new();
        let mut watch = Watch::default();
        let state = loop {
            let chunk = match host::race(host::settled(&values::next_chunk(&reader)), &mut stop).await {
                Either::Right(stop) => {
                    values::cancel(&reader);
                    return match stop {
                        Either::Left(deadline) => stalled(deadline),
                        Either::Right(error) => (Observation::Aborted, Held::Error { error, has_status: false }),
                    };
                }
                // A body that breaks before its first token: as one that ends there, unless the
                // caller aborted.
                Either::Left(Err(error)) => {
                    let obs = if self.signal.as_ref().is_some_and(values::is_aborted) {
                        Observation::Aborted
                    } else {
                        // 502: what `Watch::ended` says of a stream that ends before its first token.
                        Observation::StreamFailed { status: 502, headers: hint_headers(&response), body: None }
                    };
                    return (obs, Held::Error { error, has_status: false });
                }
                Either::Left(Ok(chunk)) => chunk,
            };
            let state = if chunk.is_undefined() {
                watch.ended()
            } else {
                values::push(&held, &chunk);
                // A body's chunks are Uint8Arrays, read where they lie; anything else a custom
                // transport hands back is converted (a copy) as `new Uint8Array` does.
                match chunk.dyn_ref::<js_sys::Uint8Array>() {
                    Some(bytes) => feed(&mut watch, bytes),
                    None => feed(&mut watch, &js_sys::Uint8Array::new(&chunk)),
                }
            };
            if state != State::Pending {
                break state;
            }
        };
        let idle = cfg.idle_timeout_ms.map(|ms| ms as f64);
        let (opts, names) = (&self.client.opts.js, &self.names.js);
        let held = Held::Value(values::resumed(&response, &held, &reader, idle, opts, names, route as u32));
        match state {
            State::Failed { status, body } => {
                (Observation::StreamFailed { status, headers: hint_headers(&response), body }, held)
            }
            // A success: only the rate-limit headers (for pacing) matter, when asked for.
            _ => {
                let lines = if limits { values::limit_headers(&response.headers()) } else { None };
                (Observation::Committed { headers: lines.map(Headers::from_lines).unwrap_or_default() }, held)
            }
        }
    }
}

/// Feeds a chunk to the watch a slice at a time, up to where its state is decided: a first chunk
/// may carry most of a short stream, and the rest is neither copied into the wasm nor parsed.
fn feed(watch: &mut Watch, chunk: &js_sys::Uint8Array) -> State {
    const SLICE: u32 = 4096;
    let mut at = 0;
    loop {
        let end = chunk.length().min(at + SLICE);
        let state = watch.feed(&chunk.subarray(at, end).to_vec());
        if state != State::Pending || end == chunk.length() {
            return state;
        }
        at = end;
    }
}

/// An attempt's own signal (following the caller's), aborted with a `TimeoutError` when its
/// timer fires, which sets its `timed_out` flag; dropped, the timer is cleared.
struct OwnSignal {
    sig: AttemptSignal,
    timed_out: Rc<Cell<bool>>,
    timer: Cell<Option<host::Timer>>,
    _on_timeout: Closure<dyn FnMut()>,
}

impl OwnSignal {
    fn new(ms: u64, caller: Option<&AbortSignal>) -> Self {
        let sig = AttemptSignal::new(caller);
        let timed_out = Rc::new(Cell::new(false));
        let (flag, ctrl) = (timed_out.clone(), sig.controller.clone());
        let on_timeout = Closure::<dyn FnMut()>::new(move || {
            flag.set(true);
            ctrl.abort_with_reason(&values::timeout_error());
        });
        let timer = host::Timer::new(ms, on_timeout.as_ref().unchecked_ref());
        Self { sig, timed_out, timer: Cell::new(Some(timer)), _on_timeout: on_timeout }
    }

    /// Clears the timer: the signal still follows the caller's.
    fn disarm(&self) {
        drop(self.timer.take());
    }

    /// Whether the timer fired (the attempt timed out, rather than failed or was aborted).
    fn timed_out(&self) -> bool {
        self.timed_out.get()
    }
}

/// A stream that showed no content in time: past `firstTokenTimeoutMs` a failed attempt, past
/// the deadline the end of the call.
pub fn stalled(deadline: bool) -> (Observation, Held) {
    if deadline {
        (Observation::Timeout, Held::Error { error: values::timeout_error(), has_status: false })
    } else {
        (Observation::Stalled, Held::Nothing)
    }
}

/// What [`values::success`] found of a response below 400: its rate-limit headers (lines, or
/// undefined for none), or `None` when `seen` is an event stream's body reader. Undefined, the
/// usual success's (no rate-limit headers, or not asked for), is told inside the wasm; only a
/// string crosses out to be read.
fn success_headers(seen: &JsValue) -> Option<Headers> {
    if seen.is_undefined() {
        return Some(Headers::new());
    }
    seen.as_string().map(Headers::from_lines)
}

/// A response's wait-hint and rate-limit headers (read in one crossing).
fn hint_headers(r: &Response) -> Headers {
    super::run::NAMES.with(|names| Headers::from_lines(values::hint_headers(r, names)))
}

/// The status of anything response-like; `None` for something that is not a response.
fn status_of(v: &JsValue) -> Option<u16> {
    let s = values::status_of(v);
    (100.0..=599.0).contains(&s).then_some(s as u16)
}

/// What the classifier needs of a failed response (400 and up): the hint headers, and for a
/// 429 the body (read from a clone, so the caller still gets it whole).
async fn observe(r: &Response, status: u16) -> Observation {
    let headers = hint_headers(r);
    let mut body = None;
    if status == 429 {
        if let Ok(Ok(text)) = r.clone().map(|c| c.text()) {
            body = host::settled(&text).await.ok().and_then(|t| t.as_string());
        }
    }
    Observation::Response { status, headers, body }
}
