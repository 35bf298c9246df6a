// Event streams (fetch.rs): the wasm reads a 2xx `text/event-stream` body up to its commit point
// (policy/stream.rs decides where that is), holding the chunks; the caller then gets a Response
// whose body is those chunks and the rest, passed through one chunk at a time.

import { limitHeaders } from "./headers.js";
import { clean, noteStreamError } from "./report.js";
import { field, text } from "./values.js";

const EVENT_STREAM = "text/event-stream";
/** Whether a content type is `text/event-stream` (any case; leading whitespace skipped, then
 * anything may follow, as a parameter does): `/^\s*text\/event-stream/i` as a loop, since it runs
 * on every successful call (see `validValue` in request.js). */
function isEventStream(type) {
  if (typeof type !== "string") return false;
  const s = type.charCodeAt(0) > 32 && type.charCodeAt(0) < 127 ? type : type.trimStart();
  if (s.length < EVENT_STREAM.length) return false;
  for (let i = 0; i < EVENT_STREAM.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== EVENT_STREAM.charCodeAt(i)) return false;
  }
  return true;
}

/** The body reader of a 2xx event stream; undefined for any other response. */
function streamReader(res) {
  try {
    if (!isEventStream(res.headers.get("content-type")) || !res.body || res.body.locked) return undefined;
    return res.body.getReader();
  } catch {
    return undefined;
  }
}

/** What the wasm needs of a response below 400, in one call: the body reader of a 2xx event
 * stream, or else its rate-limit headers (lines, or undefined when it has none) when the engine
 * asks for them (`limits`: pacing is on, and the route's provider sends them). */
export function success(res, limits) {
  const reader = res.status < 300 ? streamReader(res) : undefined;
  if (reader !== undefined || !limits) return reader;
  try {
    return limitHeaders(res.headers);
  } catch {
    return undefined;
  }
}

/** The next chunk of `reader`: a Uint8Array, or undefined at the end. */
export const nextChunk = (reader) => reader.read().then((r) => (r.done ? undefined : r.value));

/** Cancels a stream or its reader; nothing waits for the cancel, so its rejection is ignored. */
export const cancel = (x) => {
  x.cancel().catch(() => {});
};

/** A superseded attempt's response given back: its body cancelled unless something reads it
 * already (a real Response's only: a custom transport may hand back look-alikes). One crossing,
 * where reading the response's type, body and lock from the wasm took four. Never throws (a
 * getter that does is a body left alone). */
export const discard = (v) => {
  try {
    if (!(v instanceof Response)) return;
    const body = v.body;
    if (body !== null && !body.locked) cancel(body);
  } catch {}
};

/** `next` (a stream's next chunk or item), or past `ms` (`idleTimeoutMs`) a TimeoutError, told to
 * `late` first (which aborts what `next` waits on: a pending read cannot be closed). */
export function idle(next, ms, late) {
  let timer;
  const gap = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const e = new DOMException(`no data for ${ms} ms (idleTimeoutMs)`, "TimeoutError");
      late?.(e);
      reject(e);
    }, ms);
  });
  return Promise.race([next, gap]).finally(() => clearTimeout(timer));
}

/** The Response the caller gets: `res`'s status, headers, `url` and `redirected`; a body of the
 * `held` chunks, then the rest of `reader` as it comes. With `idleMs`, a gap longer than that between chunks errors
 * the body with a `TimeoutError` (the SDKs raise it) and cancels the stream. An error after the
 * commit (a transport error, the idle timeout; not the caller's abort) is the caller's to see;
 * `onEvent` is told (`{ type: "streamError", phase: "after-commit", error }`) and the call's
 * report gets `streamError: { phase, error }`. `n`: the call's names. */
export function resumed(res, held, reader, idleMs, options, n, route) {
  let i = 0;
  const failed = (e) => {
    cancel(reader);
    const error = text(field(e, "name")) || typeof e;
    if (error !== "AbortError") {
      // Told to onEvent, and kept in the call's report (built by the time a body is read).
      noteStreamError(response, { phase: "after-commit", error });
      options.onEvent?.(clean({ type: "streamError", callId: n.id, phase: "after-commit", error, route, model: n.models[route] }));
    }
    throw e;
  };
  // No async function, closure, try or timer per chunk unless an idle timeout asks for one: each
  // chunk after the commit costs one read and one enqueue.
  let out;
  const passOn = (r) => {
    if (r.done) out.close();
    else out.enqueue(r.value);
  };
  const body = new ReadableStream({
    start(controller) {
      out = controller;
    },
    pull() {
      if (i < held.length) return out.enqueue(held[i++]);
      const next = idleMs === undefined ? reader.read() : idle(reader.read(), idleMs);
      return next.then(passOn, failed);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  const response = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  // What the constructor cannot be given: where the served attempt's response came from.
  if (res.url) Object.defineProperties(response, { url: { value: res.url }, redirected: { value: res.redirected === true } });
  return response;
}
