// The host as the wasm drives it (host.rs, task.rs): the calls' tasks and the promises they
// await, abort signals and their listeners, the reason an attempt's own timer aborts it with.

/** The wasm's tasks (task.rs): each polled in a microtask, its result a promise settled by the
 * function `deferred` returns (the promise is its `.p`). */
export const microtask = (f) => queueMicrotask(f);
export function deferred() {
  let settle;
  const p = new Promise((ok, no) => (settle = (y, v) => (y ? ok : no)(v)));
  settle.p = p;
  return settle;
}
export const promiseOf = (settle) => settle.p;
export const settle = (s, ok, v) => s(ok, v);

/** A promise's outcome for a wasm future (host.rs `settled`): `f` is called once `p` settles,
 * unless the future was dropped first (`unhook`: a promise cannot be un-thened). */
export function hook(p, f) {
  const h = { f, ok: false, v: undefined };
  Promise.resolve(p).then(
    (v) => ((h.ok = true), (h.v = v), h.f?.()),
    (e) => ((h.v = e), h.f?.()),
  );
  return h;
}
export const unhook = (h) => {
  h.f = null;
};
export const outcome = (h) => h.v;
export const fulfilled = (h) => h.ok;

const abortedOf = Object.getOwnPropertyDescriptor(globalThis.AbortSignal?.prototype ?? {}, "aborted")?.get;
/** `signal.aborted`, through the prototype's getter: Node 20 gives each AbortSignal a hidden class
 * of its own, so `signal.aborted` misses V8's caches and searches the prototype chain each time
 * (~0.3 µs; the getter called directly ~0.1). Any object that is not a real AbortSignal is read
 * as a property. */
export function isAborted(signal) {
  try {
    return abortedOf.call(signal) === true;
  } catch {
    return signal.aborted === true;
  }
}

/** `p`, or a rejection with `signal`'s reason the moment it aborts (what `p` does then is
 * ignored): a shared pace answer, a request body being read. */
export function untilAborted(p, signal) {
  if (isAborted(signal)) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/** The signal of a call object (`readRequest`, `fnCall`: each checked that it is an AbortSignal
 * and flagged it in the call's shape): a plain property read, where the wasm's own lookup by name
 * (`Reflect.get` with a key it made) missed V8's caches. */
export const signalOf = (call) => call.signal;

/** An attempt's own AbortController. Made here rather than through web-sys, whose binding may
 * throw and so goes through the glue's catching wrapper (a closure and an arguments object). */
export const abortController = () => new AbortController();

/** The signal an attempt with its own `controller` is sent with, when the caller passed a
 * signal: the controller's, made to follow `caller` — aborted with the caller's reason when the
 * caller's is aborted, while the attempt runs and after it, as its body streams — as
 * `AbortSignal.any([caller, signal])` would, at a fraction of its cost (9.6 µs on Node 20, 3.9 on
 * Node 24, against ~0.5). The caller's signal gets one listener, whatever number of attempts
 * follow it, and holds them weakly: a list of `WeakRef`s, swept of the collected ones as it
 * doubles, so a long-lived signal passed to every call collects neither listeners nor entries.
 * A caller's signal that cannot take the list (not extensible) is followed through `AbortSignal.any`;
 * undefined when neither works (host.rs forwards the abort itself then). */
export function followSignal(caller, controller) {
  const signal = controller.signal;
  if (isAborted(caller)) {
    controller.abort(caller.reason);
    return signal;
  }
  try {
    let f = caller[FOLLOWERS];
    if (f === undefined) {
      const list = { refs: [], sweepAt: 16 };
      caller[FOLLOWERS] = list; // throws for a signal that is not extensible, before any listener
      const forward = () => {
        const refs = list.refs;
        list.refs = [];
        for (const r of refs) r.deref()?.abort(caller.reason);
      };
      try {
        caller.addEventListener("abort", forward, { once: true });
      } catch (e) {
        delete caller[FOLLOWERS]; // no list without its listener
        throw e;
      }
      f = list;
    }
    if (f.refs.length >= f.sweepAt) {
      f.refs = f.refs.filter((r) => r.deref() !== undefined);
      f.sweepAt = Math.max(16, 2 * f.refs.length);
    }
    // The controller lives as long as its signal (which the transport holds while it reads).
    signal[CONTROLLER] = controller;
    f.refs.push(new WeakRef(controller));
    return signal;
  } catch {}
  try {
    return AbortSignal.any([caller, signal]);
  } catch {}
  return undefined;
}
const FOLLOWERS = Symbol("llm-retry followers");
const CONTROLLER = Symbol("llm-retry controller");

/** An abort listener, called once (host.rs `Listener`), and its removal. The host's own methods;
 * a signal that is not a real one (only real ones get here) is left alone. */
export function listen(signal, f) {
  try {
    signal.addEventListener("abort", f, { once: true });
  } catch {}
}
export function unlisten(signal, f) {
  try {
    signal.removeEventListener("abort", f);
  } catch {}
}

/** The reason an attempt is aborted with when its own timer fires, as `AbortSignal.timeout()`'s. */
export const timeoutError = () => new DOMException("attempt timed out", "TimeoutError");

/** `a.push(v)`, without its result: the wasm's other bindings of this shape share one wrapper. */
export function push(a, v) {
  a.push(v);
}
