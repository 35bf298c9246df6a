// retryFetch's request: read once, replayed on every attempt and route. A string or absent body
// (what the SDKs send) is passed through as given: no copy. Any other body — ArrayBuffer, typed
// array, Blob, FormData, URLSearchParams, ReadableStream, or a `Request` as input — is read once
// into bytes through `new Request(input, init)`, so every attempt sends the same bytes
// (FormData's multipart boundary included).

import { untilAborted } from "./host.js";
import { callId, keyId, keyTable, numbersView, shape } from "./names.js";
import { callOptions, routeAttempts } from "./options.js";
import { success } from "./stream.js";
import { NAME, field, got, plain } from "./values.js";

/** Methods that are safe to repeat after a timeout (RFC 9110 §9.2.2). */
const IDEMPOTENT = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"];

const absent = (v) => v === undefined || v === null;

/** The page's address in a browser, against which relative URLs resolve (Deno throws on
 * `location` when run without --location). */
const page = () => {
  try {
    return globalThis.location?.href;
  } catch {
    return undefined;
  }
};

/** The top-level `"model"` of a JSON string body, found without parsing the whole prompt: a
 * string with no escape in it, within 300 characters of its key. Scanned by hand, as every call
 * does this (a pattern's match and a slice are two allocations more). A body whose first key is
 * `model`, as the SDKs send it, is read at its start. Any other is walked back from its end by its
 * structure, strings skipped whole with `lastIndexOf`, to the last `"model"` key at its top level
 * (the one `JSON.parse` keeps): one after the prompt costs its distance from the end, not the
 * prompt's length, and one nested in another value (a tool's schema, metadata) is passed over.
 * A body that repeats `model` at its top level (no SDK sends one) is read at its first when that
 * is its first key: finding a later one would mean reading the whole prompt on every call. */
const modelOf = (body) => {
  if (typeof body !== "string") {
    body = body instanceof Uint8Array ? jsonText(body) : undefined;
    if (body === undefined) return undefined;
  }
  const open = skipSpace(body, 0);
  if (body.charCodeAt(open) !== 123) return undefined; // {
  const key = skipSpace(body, open + 1);
  if (body.startsWith('"model"', key)) return modelAt(body, key);
  let depth = 0;
  let i = body.length; // walked back to here: outside any string
  for (let at = body.lastIndexOf('"model"'); at >= 0 && i >= 7; at = body.lastIndexOf('"model"', i - 7)) {
    while (i > at + 7) {
      const c = body.charCodeAt(i - 1);
      if (c === 34) {
        i = stringStart(body, i - 1);
        if (i < 0) return undefined;
      } else {
        if (c === 125 || c === 93) depth++; // } ]
        else if (c === 123 || c === 91) depth--; // { [
        i--;
      }
    }
    if (i < at + 7) continue; // inside a string the walk skipped
    i = stringStart(body, at + 6);
    if (i !== at) continue; // the end of a longer string
    if (depth === 1 && body.charCodeAt(skipSpace(body, at + 7)) === 58) return modelAt(body, at);
  }
  return undefined;
};

/** The string value of the key `"model"` at `at` (its `:` checked), or undefined. */
const modelAt = (body, at) => {
  const colon = skipSpace(body, at + 7);
  if (body.charCodeAt(colon) !== 58) return undefined; // :
  const q = skipSpace(body, colon + 1);
  if (body.charCodeAt(q) !== 34) return undefined; // "
  const end = body.indexOf('"', q + 1);
  if (end < 0 || end >= at + 300) return undefined;
  const model = body.slice(q + 1, end);
  return model.includes("\\") ? undefined : model;
};

/** The index of the `"` that opens the string whose closing `"` is at `j`, or -1. */
const stringStart = (s, j) => {
  for (let i = s.lastIndexOf('"', j - 1); i >= 0; i = s.lastIndexOf('"', i - 1)) {
    let k = i - 1;
    while (k >= 0 && s.charCodeAt(k) === 92) k--; // \
    if ((i - 1 - k) % 2 === 0) return i; // an even run of backslashes before it: not escaped
    if (i === 0) break;
  }
  return -1;
};

/** The index of the first character at or after `i` that is not JSON whitespace. */
const skipSpace = (s, i) => {
  for (let c = s.charCodeAt(i); c === 32 || c === 10 || c === 13 || c === 9; c = s.charCodeAt(++i));
  return i;
};

/** The body with its top-level `"model"` replaced, for fallback `i`. */
const withModel = (body, model, i) => {
  let json;
  try {
    json = JSON.parse(typeof body === "string" ? body : jsonText(body));
  } catch {}
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TypeError(`fallbacks[${i}].model needs a JSON object request body`);
  }
  json.model = model;
  return JSON.stringify(json);
};

/** A body read into bytes (a Request's, a Blob, a stream, a typed array) as text, when it may
 * be a JSON object (its first byte past any whitespace is `{`) and is UTF-8: where its model is. */
function jsonText(bytes) {
  let i = 0;
  while (bytes[i] === 32 || bytes[i] === 9 || bytes[i] === 10 || bytes[i] === 13) i++;
  if (bytes[i] !== 123) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** The init keys of the fast path; any other (redirect, mode, credentials, …) takes `new Request`. */
const COMMON = ["method", "headers", "body", "signal"];

const common = (init) => {
  for (const k in init) if (!COMMON.includes(k) && init[k] !== undefined) return false;
  return true;
};

/** The request URL, resolved against the page in a browser: http(s) and without credentials, or
 * a TypeError (fetch would reject it on every attempt; the message leaves the password out).
 * `{ href, origin }`; the last one is remembered, since a client mostly calls one URL. */
const httpUrl = (input) => {
  const s = String(input);
  const base = page();
  if (s === lastUrl[0] && base === lastUrl[1]) return lastUrl[2];
  const u = new URL(s, base);
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new TypeError(`only http: and https: URLs can be fetched with retries (got ${u.protocol})`);
  }
  if (u.username || u.password) {
    throw new TypeError("a request URL may not include credentials (user:password@); send them in a header");
  }
  lastUrl = [s, base, { href: u.href, origin: u.origin }];
  return lastUrl[2];
};
let lastUrl = [];

/** A header value fetch takes as it is: no control character but tab, nothing above U+00FF.
 * A loop rather than a pattern: it runs on each value of each call, and a pattern's matcher is
 * more code to bring back into the CPU's caches (a call's code is cold after a socket's work). */
const validValue = (v) => {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 ? c !== 9 : c === 0x7f || c > 0xff) return false;
  }
  return true;
};

/** Header names found valid already: a client sends mostly the same ones (the same strings,
 * whose hash V8 keeps), and a lookup costs less than the pattern. Bounded. (Values are checked
 * each time: they may be secrets, which are not to be kept.) */
const NAMES = new Set();
const validName = (k) => {
  if (NAMES.has(k)) return true;
  if (!NAME.test(k)) return false;
  if (NAMES.size >= 256) NAMES.clear();
  NAMES.add(k);
  return true;
};

/** `checkHeaders`' answers for headers that need no copy: `[undefined, idempotent]`, shared. */
const PLAIN = [Object.freeze([undefined, false]), Object.freeze([undefined, true])];

/** Checks headers once, as fetch would (it would reject bad ones on every attempt), and whether
 * they carry an Idempotency-Key: `[parsed, idempotent]`. A plain object of such string values
 * (what the SDKs send) is checked entry by entry, and `parsed` left undefined; a Headers is
 * valid as it is; anything else goes through `new Headers`, which throws what fetch would. */
function checkHeaders(headers) {
  if (absent(headers)) return PLAIN[0];
  // A plain object first (what the SDKs send): no `instanceof` to pay for it.
  const isPlain = plain(headers);
  if (!isPlain && headers instanceof Headers) return [headers, headers.has("idempotency-key")];
  if (isPlain && Object.getOwnPropertySymbols(headers).length === 0) {
    let idempotent = false;
    let ok = true;
    for (const k of Object.keys(headers)) {
      const v = headers[k];
      if (typeof v !== "string" || !validName(k) || !validValue(v)) {
        ok = false;
        break;
      }
      if (k.length === 15 && k.toLowerCase() === "idempotency-key") idempotent = true;
    }
    if (ok) return PLAIN[+idempotent];
  }
  let parsed;
  try {
    parsed = new Headers(headers);
  } catch (e) {
    throw headersError(headers, e);
  }
  return [parsed, parsed.has("idempotency-key")];
}

/** What `new Headers(headers)` threw, without the value it quotes (an API key, often): the
 * header named instead, when it can be found. */
function headersError(headers, e) {
  const pairs = Array.isArray(headers) ? headers : plain(headers) ? Object.entries(headers) : [];
  for (const p of pairs) {
    const [k, v] = Array.isArray(p) ? p : [];
    if (typeof k !== "string") continue;
    if (!NAME.test(k)) return new TypeError(`init.headers: "${k}" is not a header name`);
    if (typeof v === "string" && !validValue(v.trim())) {
      return new TypeError(`init.headers: the value of "${k}" has a character fetch rejects (a control character or one above U+00FF)`);
    }
  }
  return new TypeError(`init.headers: fetch rejects them (${field(e, "name") === "TypeError" ? "an invalid name or value" : "not headers"})`);
}

/** A method token that fetch accepts (RFC 9110 token; not CONNECT, TRACE or TRACK). The usual
 * ones are known good without running the two patterns. */
const METHODS = new Set(["POST", "GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);
const checkMethod = (m) => {
  if (METHODS.has(m)) return m;
  if (!NAME.test(m)) throw new TypeError(`init.method must be an HTTP method (${got(m)})`);
  if (/^(connect|trace|track)$/i.test(m)) throw new TypeError(`init.method ${m} is forbidden by fetch`);
  return m;
};

/** Written as the shape's flags by `readRequest`, and settled with as the status by `sendParked`, when
 * what they were given threw: the value is the error (values.rs THREW). Returned rather than
 * thrown, so the wasm calls them with no catching wrapper (a closure and an `arguments` object
 * a call). */
const THREW = -2;

/**
 * Reads `fetch(input, init)`'s arguments once, rejecting what fetch itself would reject (rather
 * than retrying it). Returns the call's request, which `routeRequest` turns into what each route
 * sends (`ids` and `models` name the routes: breaker keys by number; models for events and reports) — or a
 * promise of it when a body must be read first (anything but a string). The request's `shape`
 * is written at `at` at once; its flags are -1 for a promise. What fetch would reject (a
 * TypeError) is returned, with the flags THREW; the promise rejects with it.
 */
export function readRequest(input, init, options, at) {
  try {
    const req = readCall(input, init, options);
    if (req instanceof Promise) numbersView()[at] = -1;
    else shape(req, at);
    return req;
  } catch (e) {
    numbersView()[at] = THREW;
    return e;
  }
}

function readCall(input, init, options) {
  if (absent(init)) init = {};
  else if (typeof init !== "object") throw new TypeError("init must be an object");
  let call;
  if (init.retry !== undefined) {
    // This call's own options: ours, so never passed on to fetch.
    let retry;
    ({ retry, ...init } = init);
    call = callOptions(retry, "init.retry");
  }
  const signal = init.signal ?? undefined;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`init.signal must be an AbortSignal (${got(signal)})`);
  }
  const { body } = init;
  // A URL string (what the SDKs pass) is told apart before `instanceof`, which looks the
  // constructor's Symbol.hasInstance up first (Node's `Request` is a lazy global getter).
  const isRequest = typeof input !== "string" && input instanceof Request;
  // What the SDKs send: a URL, and an init of method, headers, a string body and a signal. Checked
  // here as fetch would check it; any other request goes through `new Request`, which checks the rest.
  const fast = !isRequest && (absent(body) || typeof body === "string") && common(init);
  if (isRequest) httpUrl(input.url);
  const { href, origin } = isRequest ? {} : httpUrl(input);
  if (!fast) return readSlow(input, init, options, call, signal, isRequest, href);
  const m = init.method; // read once, as fetch reads it
  const method = typeof m === "string" ? checkMethod(m) : "GET";
  if (!absent(body) && method !== "POST" && /^(get|head)$/i.test(method)) {
    throw new TypeError("Request with GET/HEAD method cannot have body.");
  }
  // Never mutated: each route's init is a copy with method, headers, body and signal set.
  return request(href, origin, method, init.headers, body ?? undefined, init, fast, signal, options, call);
}

/** A request that is not the fast path's: read through `new Request`, its body into bytes. */
async function readSlow(input, init, options, call, signal, isRequest, href) {
  const req = new Request(isRequest ? input : href, init);
  const base = isRequest && init.redirect === undefined ? { ...init, redirect: req.redirect } : init;
  // A streamed body may take a while: the caller's abort ends the wait for it.
  const body = req.body ? new Uint8Array(await untilAborted(req.arrayBuffer(), req.signal)) : undefined;
  signal ??= isRequest ? req.signal : undefined;
  const { url, method, headers } = req;
  return request(url, new URL(url).origin, method, headers, body, base, false, signal, options, call);
}

function request(url, origin, method, headers, body, base, fast, signal, options, call) {
  // Read by index: checkHeaders' shared answers are frozen arrays, whose destructuring goes
  // through the array iterator's builtin rather than being folded away.
  const checked = checkHeaders(headers);
  const parsed = checked[0];
  const idempotencyKey = checked[1];
  const primary = modelOf(body);
  const fallbacks = call?.fallbacks ?? options.fallbacks;
  const models = [primary];
  const keyNames = keyTable(options);
  const ids = [keyId(options, origin, primary)];
  for (let i = 0; i < fallbacks.length; i++) {
    const f = fallbacks[i];
    const model = f.model ?? primary;
    models.push(model);
    ids.push(keyId(options, f.origin ?? origin, model));
  }
  const idempotent = idempotencyKey || (method !== "POST" && IDEMPOTENT.includes(method.toUpperCase()));
  return {
    url, origin, method, headers, parsed, body, base, fast, signal, idempotent, ids, models, options, routes: undefined,
    fallbacks, attempts: routeAttempts(options, call), call, id: callId(), keyNames, keyGen: options.keyGen,
  };
}

/** Sends `route` of a request from `readRequest` with `signal` through `transport` (the
 * caller's `fetch` option, or the global fetch when undefined). A transport that throws at once
 * rejects, as fetch does; what `routeRequest` throws is thrown (it ends the call). */
export function send(req, route, signal, transport) {
  const r = routeRequest(req, route, signal);
  const url = r[0];
  const init = r[1];
  try {
    return Promise.resolve(transport === undefined ? fetch(url, init) : transport(url, init));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A response's status (100 to 599), or 0 for a value that is not a response (duck-typed: another
 * fetch implementation's Response is not `instanceof` this one's). */
export const statusOf = (v) => {
  const s = field(v, "status");
  return typeof s === "number" && s >= 100 && s <= 599 ? s : 0;
};

/** A parked call's first attempt (fetch.rs): `route` sent with `signal` (the attempt's own, when it
 * has a timeout) or else the caller's, and what its
 * transport settles with handed to the wasm in one call, `settle(id, value, status, seen, now)`:
 * `status` -1 for a rejection, 0 for a value that is not a response, THREW when the route's
 * request cannot be built (at once) or fetch refused it; `seen`, below 400, what `success` finds;
 * `now`, `Date.now()` (read here, the wasm crosses out for it once fewer). */
export const sendParked = (req, route, signal, transport, id, limits, settle) => {
  let sent;
  try {
    sent = send(req, route, signal ?? req.signal, transport);
  } catch (e) {
    // The route's request could not be built (`routeRequest` threw): the call ends with it.
    return settle(id, e, THREW, undefined, Date.now());
  }
  return sent.then((v) => {
    const status = statusOf(v);
    return settle(id, v, status, status > 0 && status < 400 ? success(v, limits) : undefined, Date.now());
  }, (e) => settle(id, e, refused(e) ? THREW : -1, undefined, Date.now()));
};

/** Whether a transport's rejection is fetch refusing the request itself, found only as it sends:
 * Node's fetch (undici) takes a header value with a control character or DEL into a `Request`
 * but rejects it with "fetch failed", its cause an InvalidArgumentError. Every attempt would fail
 * the same way, so the call ends at once with that error, as raw fetch does, instead of being
 * retried as a network error. */
export const refused = (e) => e instanceof TypeError && field(field(e, "cause"), "code") === "UND_ERR_INVALID_ARG";

/** `[url, init]` for `route` of a request from `readRequest`, built once per call, with the
 * attempt's `signal` (the caller's, or the attempt's own when it has a timeout) set in place:
 * attempts are sequential. */
export function routeRequest(req, route, signal) {
  // The primary route of a request read as it came, with the caller's own signal: the caller's
  // init itself (fetch does not change it).
  if (route === 0 && req.fast && (signal ?? null) === (req.signal ?? null)) return [req.url, req.base];
  const r = ((req.routes ??= [])[route] ??= build(req, route));
  if (signal !== undefined || r[1].signal !== undefined) r[1].signal = signal;
  return r;
}

function build(req, route) {
  const init = { ...req.base };
  const set = (k, v) => {
    if (v !== undefined) init[k] = v;
  };
  const f = req.fallbacks[route - 1];
  if (f || !req.fast) set("method", req.method);
  if (!f) {
    if (!req.fast) {
      set("headers", req.headers);
      set("body", req.body);
    }
    return [req.url, init];
  }
  const headers = new Headers(req.parsed ?? req.headers);
  if ((f.origin ?? req.origin) !== req.origin) {
    for (const name of req.options.sensitive) {
      if (!f.headers.some(([k]) => k === name)) headers.delete(name);
    }
  }
  for (const [k, v] of f.headers) headers.set(k, v);
  set("headers", headers);
  set("body", f.model === undefined ? req.body : withModel(req.body, f.model, route - 1));
  return [f.url ?? req.url, init];
}
