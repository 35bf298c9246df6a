//! Bindings to the host: timers, `AbortSignal`, the clock and crypto-seeded randomness. (The
//! GLOBAL `fetch` is called from `request.js`, never `window.fetch`, so one build runs in
//! browsers, Workers, Deno and Node.)
//! Nothing here runs at module load: Workers forbid timers and randomness at global scope.

use core::cell::{Cell, OnceCell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use alloc::boxed::Box;
use alloc::rc::{Rc, Weak};
use alloc::vec::Vec;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use web_sys::{AbortController, AbortSignal};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: u32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// Wall-clock milliseconds since the epoch, read at each decision (Workers advance it only after I/O).
pub fn now_ms() -> u64 {
    ms(js_sys::Date::now())
}

/// A time read by JavaScript (`Date.now()`), as the engine takes it.
pub fn ms(now: f64) -> u64 {
    now.max(0.0) as u64
}

/// Longest single timer the hosts honour (larger values fire at once).
const MAX_TIMER_MS: u64 = 0x7fff_ffff;

pub fn timer_ms(ms: u64) -> u32 {
    ms.min(MAX_TIMER_MS) as u32
}

/// A per-client random source (splitmix64), seeded from the host's crypto on first use — not
/// at construction, which may happen at a Worker's global scope. The engine asks for a number
/// only when it draws a wait, so a call that succeeds at once never starts the host's crypto
/// (Node loads it on first use: ~1.3 ms).
#[derive(Default)]
pub struct Rng(Cell<u64>);

impl Rng {
    pub fn next_f64(&self) -> f64 {
        let mut s = self.0.get();
        if s == 0 {
            s = getrandom::u64().unwrap_or(0) ^ (js_sys::Date::now() as u64).rotate_left(17) | 1;
        }
        let x = crate::rng::next_f64(&mut s);
        self.0.set(s);
        x
    }
}

/// One attempt's signal: aborted by the caller's signal or by the attempt's own controller.
/// Following the caller's (`values::follow_signal`, as `AbortSignal.any` would) keeps the
/// caller's abort working while the body streams, after headers.
pub struct AttemptSignal {
    pub controller: AbortController,
    pub signal: AbortSignal,
    _forward: Option<(Listener, Closure<dyn FnMut()>)>,
}

impl AttemptSignal {
    pub fn new(caller: Option<&AbortSignal>) -> Self {
        let controller = super::values::abort_controller();
        let own = controller.signal();
        let Some(caller) = caller else {
            return Self { controller, signal: own, _forward: None };
        };
        if let Some(signal) = super::values::follow_signal(caller, &controller) {
            return Self { controller, signal, _forward: None };
        }
        // Hosts that can do neither: forward the caller's abort while the attempt lives.
        let (to, from) = (controller.clone(), caller.clone());
        let forward = Closure::<dyn FnMut()>::new(move || to.abort_with_reason(&from.reason()));
        let listener = Listener::add(caller, forward.as_ref().unchecked_ref());
        Self { controller, signal: own, _forward: Some((listener, forward)) }
    }
}

/// An `abort` listener, removed when dropped so long-lived signals do not collect listeners.
pub struct Listener {
    signal: AbortSignal,
    f: Function,
}

impl Listener {
    fn add(signal: &AbortSignal, f: &Function) -> Self {
        super::values::listen(signal, f);
        Self { signal: signal.clone(), f: f.clone() }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        super::values::unlisten(&self.signal, &self.f);
    }
}

/// Resolves when the host calls the function that `arm` handed to something (a timer, a
/// listener), which it keeps. Dropping it drops that guard first (clearing the timer, removing
/// the listener) and then the callback, so nothing outlives it — not even when it never fired.
/// (A timer made into a promise instead would keep its callbacks, and the task they hold, alive
/// for good once cleared, its promise never settling: one leak per cleared timer.)
pub struct Until<G> {
    guard: G,
    _callback: Closure<dyn FnMut()>,
    fired: Rc<Fired>,
}

#[derive(Default)]
struct Fired {
    yes: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl<G> Until<G> {
    fn new(arm: impl FnOnce(&Function) -> G) -> Self {
        let fired = Rc::new(Fired::default());
        let on_fire = fired.clone();
        let callback = Closure::<dyn FnMut()>::new(move || {
            on_fire.yes.set(true);
            if let Some(w) = on_fire.waker.take() {
                w.wake();
            }
        });
        let guard = arm(callback.as_ref().unchecked_ref());
        Self { guard, _callback: callback, fired }
    }
}

impl<G> Future for Until<G> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired.yes.get() {
            return Poll::Ready(());
        }
        self.fired.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// Resolves with `signal`'s reason when it aborts; never, without one. Dropped, its listener is
/// removed.
pub struct Aborted(Option<(Until<Listener>, AbortSignal)>);

pub fn aborted(signal: Option<&AbortSignal>) -> Aborted {
    Aborted(signal.map(|s| (Until::new(|resolve| Listener::add(s, resolve)), s.clone())))
}

impl Future for Aborted {
    type Output = JsValue;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<JsValue> {
        match &mut self.get_mut().0 {
            Some((until, signal)) => Pin::new(until).poll(cx).map(|()| signal.reason()),
            None => Poll::Pending,
        }
    }
}

/// A promise's callback in `host.js` (`hook`), unhooked when dropped: a promise cannot be
/// un-thened, so a future dropped before its promise settles is simply not called.
pub struct Hook(JsValue);

impl Drop for Hook {
    fn drop(&mut self) {
        super::values::unhook(&self.0);
    }
}

/// What `p` settles with (any value, as `await` takes it): its value, or what it rejected with.
pub struct Settled(Until<Hook>);

pub fn settled(p: &JsValue) -> Settled {
    Settled(Until::new(|resolve| Hook(super::values::hook(p, resolve))))
}

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(()) => {
                let hook = &self.0.guard.0;
                let v = super::values::outcome(hook);
                Poll::Ready(if super::values::fulfilled(hook) { Ok(v) } else { Err(v) })
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// The first of two futures to finish; the other is dropped (which cancels timers and listeners).
pub fn race<A: Future + Unpin, B: Future + Unpin>(a: A, b: B) -> Race<A, B> {
    Race(a, b)
}

pub struct Race<A, B>(A, B);

impl<A: Future + Unpin, B: Future + Unpin> Future for Race<A, B> {
    type Output = Either<A::Output, B::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = Pin::new(&mut self.0).poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        Pin::new(&mut self.1).poll(cx).map(Either::Right)
    }
}

/// A host timer that calls `f` after `ms`, cleared when dropped.
pub struct Timer(JsValue);

impl Timer {
    pub fn new(ms: u64, f: &Function) -> Self {
        Self(set_timeout(f, timer_ms(ms)))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.0);
    }
}

/// Resolves after `ms`; dropping it clears the timer.
pub type Delay = Until<Timer>;

pub fn delay(ms: u64) -> Delay {
    Until::new(|resolve| Timer::new(ms, resolve))
}

/// Resolves when a stream has waited too long for its first content event: `false` after
/// `first_token_ms`, `true` at the deadline, whichever comes first.
pub fn first_token(first_token_ms: Option<u64>, deadline_ms: u64) -> Pin<Box<dyn Future<Output = bool>>> {
    let deadline = delay(deadline_ms);
    match first_token_ms.filter(|&ms| ms < deadline_ms) {
        Some(ms) => Box::pin(race(delay(ms), deadline).map_either()),
        None => Box::pin(async move {
            deadline.await;
            true
        }),
    }
}

impl<A: Future<Output = ()> + Unpin, B: Future<Output = ()> + Unpin> Race<A, B> {
    async fn map_either(self) -> bool {
        matches!(self.await, Either::Right(()))
    }
}

/// Sleeps `ms` or until `woken` resolves, or fails with the signal's reason the moment it
/// aborts. No timer outlives it. A host timer may fire up to a millisecond early by the clock
/// (Node's loop time is cached), so the rest is slept again: a wait is never shorter than the
/// one decided, a server's hint included. Only a rest that shrinks is slept: a wall clock that
/// went back, or one a runtime holds still, ends the wait after its timer as before. The last
/// millisecond is the exception, given up to two more timers while the clock has not ticked
/// over: a 1 ms timer can fire before a clock read in whole milliseconds moves.
pub async fn sleep(ms: u64, signal: Option<&AbortSignal>, woken: Option<Notified>) -> Result<(), JsValue> {
    if let Some(s) = signal.filter(|s| super::values::is_aborted(s)) {
        return Err(s.reason());
    }
    let end = now_ms().saturating_add(ms);
    let timer = Box::pin(async move {
        let (mut left, mut spares) = (ms, 2u8);
        loop {
            delay(left).await;
            let rest = end.saturating_sub(now_ms());
            let stalled = rest == left;
            if rest == 0 || rest > left || (stalled && !(left == 1 && spares > 0)) {
                break;
            }
            spares = spares.saturating_sub(u8::from(stalled));
            left = rest;
        }
    });
    let woken: Pin<Box<dyn Future<Output = ()> + '_>> = match woken {
        Some(w) => Box::pin(w),
        None => Box::pin(core::future::pending()),
    };
    match race(race(timer, woken), aborted(signal)).await {
        Either::Left(_) => Ok(()),
        Either::Right(reason) => Err(reason),
    }
}

/// Wakes the [`Notified`]s waiting for any of the route keys [`Notify::notify`] is given: pure
/// Rust, no JS object per waiter. Only those: a call waiting in line for one route's breaker is
/// not woken when another's closes (with many routes open at once, each closing woke every call
/// waiting for any of them, to decide again and wait again).
#[derive(Default)]
pub struct Notify {
    /// The pending `Notified`s; a dropped one leaves a dead entry, pruned as the list grows.
    waiters: RefCell<Vec<Weak<Waiter>>>,
}

/// A pending [`Notified`]: its keys, its waker once polled, and whether it was woken.
struct Waiter {
    keys: Vec<Rc<str>>,
    waker: Cell<Option<Waker>>,
    woken: Cell<bool>,
}

impl Notify {
    /// Wakes the waits for any of `keys` (a route key is one string, though maybe not one `Rc`:
    /// `Rc<str>`'s `==` compares the pointers, then the strings).
    pub fn notify(&self, keys: &[Rc<str>]) {
        // Woken once the list is let go: a waker may run its task at once.
        for waker in self.take(keys) {
            waker.wake();
        }
    }

    /// Takes the waiters for any of `keys` out of the list (marked woken), and the dropped ones.
    fn take(&self, keys: &[Rc<str>]) -> Vec<Waker> {
        let mut woken = Vec::new();
        let mut waiters = self.waiters.borrow_mut();
        let mut i = 0;
        while let Some(w) = waiters.get(i) {
            match w.upgrade() {
                Some(w) if !w.keys.iter().any(|k| keys.contains(k)) => i += 1,
                w => {
                    if let Some(w) = w {
                        w.woken.set(true);
                        woken.extend(w.waker.take());
                    }
                    waiters.swap_remove(i);
                }
            }
        }
        woken
    }

    /// Resolves at the next `notify` of one of `keys`: listed now, so no notify after this is missed.
    pub fn wait<'a>(&self, keys: impl Iterator<Item = &'a Rc<str>>) -> Notified {
        let mut mine = Vec::new();
        for k in keys {
            mine.push(k.clone());
        }
        let waiter = Rc::new(Waiter { keys: mine, waker: Cell::new(None), woken: Cell::new(false) });
        let grown = self.waiters.borrow().len();
        if grown >= 64 && grown.is_power_of_two() {
            self.take(&[]); // prunes the dropped ones
        }
        self.waiters.borrow_mut().push(Rc::downgrade(&waiter));
        Notified(waiter)
    }
}

pub struct Notified(Rc<Waiter>);

impl Future for Notified {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.woken.get() {
            return Poll::Ready(());
        }
        self.0.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(target_feature = "atomics")]
compile_error!("`Local` assumes one thread: build without the atomics target feature");

/// A value for the module's one thread, made with the module (`thread_local!` with a `const`
/// value, without std): no first-use check, nor its code for each type.
pub struct Global<T>(T);

// SAFETY: wasm32 without the atomics feature (checked above) has exactly one thread.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0)
    }
}

/// A value made on first use, for the module's one thread: `thread_local!` without std.
pub struct Local<T> {
    cell: OnceCell<T>,
    init: fn() -> T,
}

// SAFETY: wasm32 without the atomics feature (checked above) has exactly one thread.
unsafe impl<T> Sync for Local<T> {}

impl<T> Local<T> {
    pub const fn new(init: fn() -> T) -> Self {
        Self { cell: OnceCell::new(), init }
    }

    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(self.cell.get_or_init(self.init))
    }
}
