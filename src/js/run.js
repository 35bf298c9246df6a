// retry(fn): the routes, each attempt's context, and what a thrown error is.

import { line } from "./headers.js";
import { callId, keyId, keyTable } from "./names.js";
import { callOptions, object, routeAttempts } from "./options.js";
import { idle } from "./stream.js";
import { fail, field, got, text } from "./values.js";

/** A `retry(fn)` call: `fn` checked, and its routes named, with a createRetry call's `opts`
 * (`{ signal, …per-call options }`, see `callOptions` in options.js). */
export function fnCall(fn, options, opts) {
  if (typeof fn !== "function") throw new TypeError(`retry: fn must be a function (${got(fn)})`);
  let signal, call;
  if (opts !== undefined) {
    let per;
    ({ signal, ...per } = object(opts, "options"));
    if (signal !== undefined && !(signal instanceof AbortSignal)) fail(TypeError, "signal", "an AbortSignal", signal);
    if (Object.keys(per).length) call = callOptions(per, "options");
  }
  const fallbacks = call?.fallbacks ?? options.fallbacks;
  const { keys, models } = fnRoutes(fallbacks);
  const keyNames = keyTable(options);
  const ids = keys.map((k) => keyId(options, k, undefined));
  // Written out, not `{ ...routes, ids, … }`: Node 20 builds an object spread followed by more
  // properties through a slow path (3.3 µs here, a third of a retry(fn) call; 0.05 on Node 24).
  return {
    keys, models, ids, attempts: routeAttempts(options, call), fallbacks, call, signal, id: callId(), keyNames,
    keyGen: options.keyGen,
  };
}

// ---------------------------------------------------------------------------------------------
/** Keys and models of `retry(fn)`'s routes: `#0` for the call as given, a fallback by its URL's
 * origin and model (or its index when it sets neither). */
function fnRoutes(fallbacks) {
  const keys = ["#0"];
  const models = [undefined];
  fallbacks.forEach((f, i) => {
    keys.push(f.url === undefined && f.model === undefined ? `#${i + 1}` : `${f.origin ?? ""} ${f.model ?? ""}`);
    models.push(f.model);
  });
  return { keys, models };
}

/** `fn` called for an attempt with its context (`fnContext`), as a promise: what it returns, or
 * what it throws as a rejection. One crossing for what took three (the context, the call through
 * a catching binding, the promise). */
export function callFn(fn, call, route, attempt, signal) {
  try {
    return Promise.resolve(fn(fnContext(call, route, attempt, signal)));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** What `fn` is called with: `{ attempt, signal, route: { index, model?, url?, headers? } }`. */
function fnContext(call, route, attempt, signal) {
  const f = call.fallbacks[route - 1];
  const info = { index: route };
  if (f) {
    if (f.model !== undefined) info.model = f.model;
    if (f.url !== undefined) info.url = f.url;
    if (f.headers.length) info.headers = Object.fromEntries(f.headers);
  }
  return { attempt, signal, route: info };
}

/** The async iterator of what `fn` returned (an SDK's stream object), or undefined. */
export function asyncIterator(v) {
  try {
    const f = v?.[Symbol.asyncIterator];
    return typeof f === "function" && typeof v !== "string" ? f.call(v) : undefined;
  } catch {
    return undefined;
  }
}

/** The next item, as `[done, value]`; what `next` throws (or a `next` that is missing) rejects. */
export function nextItem(iter) {
  try {
    return Promise.resolve(iter.next()).then((r) => [r?.done === true, r?.value]);
  } catch (e) {
    return Promise.reject(e);
  }
}

export const closeIterator = (iter) => {
  try {
    Promise.resolve(iter.return?.()).catch(() => {});
  } catch {}
};

/** An item of an SDK stream as an event for the stream verdict: `[name, json]`. */
export function itemEvent(item) {
  let json = "";
  try {
    json = JSON.stringify(item) ?? "";
  } catch {}
  return [text(field(item, "type")) || text(field(item, "event")), json];
}

/** What the caller gets for a stream object of which `held` items were read: the object itself,
 * its iteration resumed — those items, then the rest, each once. Its own methods iterate through
 * it too (the OpenAI and Anthropic SDKs' `Stream` builds `toReadableStream` on its
 * `Symbol.asyncIterator` and `tee` on its `iterator` member, so both are resumed), and its
 * private state stays its own. An object that cannot take them (frozen) is stood in for. With
 * `idleMs`, an item that takes longer than that to come ends the iteration with a TimeoutError
 * and aborts the attempt's request (`attempt`, the controller of the signal fn was given). */
export function resumedItems(orig, held, iter, idleMs, attempt) {
  let used = false;
  const items = () => {
    if (used) throw new TypeError("this stream has already been iterated");
    used = true;
    return (async function* () {
      let done = false;
      try {
        yield* held;
        for (;;) {
          const r = await (idleMs === undefined ? iter.next() : idle(iter.next(), idleMs, (e) => attempt.abort(e)));
          if (r.done) {
            done = true;
            return r.value;
          }
          yield r.value;
        }
      } finally {
        if (!done) closeIterator(iter); // the caller stopped early: the SDK's stream is closed
      }
    })();
  };
  const out = resumedObject(orig, items);
  RESUMED.set(out, iter);
  return out;
}

/** The stream objects handed back by `resumedItems`, with the iteration each was read from. */
const RESUMED = new WeakMap();

/** Closes the iteration of a stream object from `resumedItems` that a later attempt superseded
 * (an SDK aborts its request); anything else is left alone. */
export function releaseItems(v) {
  const iter = RESUMED.get(v);
  if (iter === undefined) return;
  RESUMED.delete(v);
  closeIterator(iter);
}

function resumedObject(orig, items) {
  if (typeof orig !== "object" || orig === null) return { [Symbol.asyncIterator]: items };
  try {
    Object.defineProperty(orig, Symbol.asyncIterator, { value: items, configurable: true, writable: true });
    if (Object.hasOwn(orig, "iterator") && typeof orig.iterator === "function") orig.iterator = items;
    return orig;
  } catch {}
  // A stand-in that reads its members from it (a proxy of the object itself could not answer
  // for a frozen own `Symbol.asyncIterator`).
  let proto = null;
  try {
    proto = Object.getPrototypeOf(orig);
  } catch {}
  return new Proxy(Object.create(proto), {
    get(_, key) {
      if (key === Symbol.asyncIterator) return items;
      const v = Reflect.get(orig, key, orig);
      return typeof v === "function" ? v.bind(orig) : v;
    },
  });
}

const NETWORK_CODES = ["ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ENETUNREACH"];
const NETWORK_MESSAGES = ["fetch failed", "failed to fetch", "networkerror", "load failed", "network connection"];

/**
 * Sorts what `fn` threw by its shape, as `[kind, body, headers]`: kind is the HTTP status of an
 * SDK error (with its hint headers among `names`, as `line`s, and its `code`/`type`/`error` as a
 * JSON body for the quota check), 0 a timeout, 1 a network error, -1 anything else (rethrown as is).
 */
export function thrown(e, names) {
  // The Vercel AI SDK's APICallError says `statusCode` and `responseHeaders`.
  const status = field(e, "status") ?? field(e, "statusCode");
  if (typeof status === "number" && status >= 100 && status <= 599) {
    const out = [status, bodyOf(e), ""];
    const h = field(e, "headers") ?? field(e, "responseHeaders");
    if (typeof h !== "object" || h === null) return out;
    const get = field(h, "get");
    if (typeof get === "function") {
      for (const name of names) {
        try {
          out[2] += line(name, get.call(h, name));
        } catch {}
      }
    } else {
      let entries = [];
      try {
        entries = Object.entries(h);
      } catch {}
      for (const [k, v] of entries) if (names.includes(k.toLowerCase())) out[2] += line(k, v);
    }
    return out;
  }
  // By its class's name too: the OpenAI SDK's APIConnectionError and APIConnectionTimeoutError
  // leave `name` as "Error".
  const name = `${text(field(e, "name"))} ${text(field(field(e, "constructor"), "name"))}`;
  const message = text(field(e, "message")).toLowerCase();
  const code = text(field(e, "code"));
  const causeCode = text(field(field(e, "cause"), "code"));
  if (name.includes("Timeout") || code === "UND_ERR_CONNECT_TIMEOUT") return [0];
  if (
    name.includes("Connection") || NETWORK_CODES.includes(code) || NETWORK_CODES.includes(causeCode)
    || (name.startsWith("TypeError ") && NETWORK_MESSAGES.some((m) => message.includes(m)))
  ) {
    return [1];
  }
  // An SDK's error for an in-band stream error event has no status but the event's error body:
  // Anthropic's SDK keeps the whole event (`{"type":"error","error":{…}}`), OpenAI's the error
  // object of a chat chunk's `{"error": …}`. Handed on as the event data it came in.
  const body = field(e, "error");
  if (typeof body === "object" && body !== null && (field(body, "type") !== undefined || field(body, "error") !== undefined)) {
    try {
      return [-2, JSON.stringify(field(body, "type") === "error" ? body : { error: body })];
    } catch {}
  }
  return [-1];
}

/** An SDK error's body as the classifier reads it: its `code`, `type` and `error` as JSON (the AI
 * SDK's `responseBody`, the body as it came). */
const bodyOf = (e) => {
  const raw = field(e, "responseBody");
  if (typeof raw === "string") return raw;
  try {
    return JSON.stringify({ code: field(e, "code"), type: field(e, "type"), error: field(e, "error") });
  } catch {
    return undefined;
  }
};
