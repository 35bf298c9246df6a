// Options. Checked where JavaScript values are at home: a wrong type or an unknown key (a typo
// such as `maxAtempts`) is a TypeError, a value out of range a RangeError, each naming the option
// as the user wrote it. Rules relating options to each other (maxMs ≥ initialMs, …) are the
// core's own (Config::validate), which throws a RangeError naming the option too.

import { HealthLink } from "./health.js";
import { bit, callNumbers, numbersView } from "./names.js";
import { NAME, fail, field, plain } from "./values.js";

// The core's own limits (policy/config.rs MAX_MS, MAX_ATTEMPTS), which it checks again.
const MAX_MS = 86_400_000; // a day: longer is almost surely a unit mistake
const MAX_ATTEMPTS = 100;
const JITTERS = ["full", "equal", "decorrelated", "none"];
const KEYS = [
  "maxAttempts", "backoff", "deadlineMs", "attemptTimeoutMs", "firstTokenTimeoutMs", "idleTimeoutMs", "retryOn",
  "maxRetryAfterMs", "idempotent",
  "budget", "breaker", "pacing", "health", "fetch", "onEvent", "fallbacks", "onExhausted", "sensitiveHeaders", "signal",
];
/** Credentials never sent to a fallback URL of another origin, unless that route sets them. */
const SENSITIVE = ["authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"];

export const object = (v, path, what = "an object") => {
  if (typeof v !== "object" || v === null || !plain(v)) fail(TypeError, path, what, v);
  return v;
};

/** Entries an array option may have: every one is honoured, so a longer one is refused. */
const MAX_ENTRIES = 10_000;

const array = (v, path) => {
  if (!Array.isArray(v)) fail(TypeError, path, "an array", v);
  if (v.length > MAX_ENTRIES) throw new RangeError(`${path} must have at most ${MAX_ENTRIES} entries (got ${v.length})`);
  return Array.from(v);
};

const typed = (v, path, type, what) => {
  if (v !== undefined && typeof v !== type) fail(TypeError, path, what, v);
  return v;
};

const number = (v, path) => {
  if (typed(v, path, "number", "a number") !== undefined && !Number.isFinite(v)) fail(RangeError, path, "a finite number", v);
  return v;
};

const int = (v, path) => {
  if (number(v, path) !== undefined && !(Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff)) {
    fail(RangeError, path, "a whole number ≥ 0", v);
  }
  return v;
};

const ms = (v, path) => {
  if (number(v, path) !== undefined && !(v >= 0 && v <= MAX_MS)) fail(RangeError, path, `between 0 and ${MAX_MS} ms`, v);
  return v;
};

/** Same length ±1 and at most one edit apart in a cheap sense: a typo, not another word. */
const close = (a, b) => {
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  if (long.length - short.length > 1) return false;
  let prefix = 0;
  while (prefix < short.length && short[prefix] === long[prefix]) prefix++;
  let suffix = 0;
  while (suffix < short.length && short.at(-1 - suffix) === long.at(-1 - suffix)) suffix++;
  return prefix + suffix + 1 >= long.length;
};

const checkKeys = (o, prefix, allowed) => {
  for (const key of Object.keys(o)) {
    if (allowed.includes(key)) continue;
    const near = allowed.find((a) => a.toLowerCase() === key.toLowerCase() || close(a, key));
    throw new TypeError(`unknown option ${prefix}${key}${near ? ` (did you mean ${prefix}${near}?)` : ""}`);
  }
};

/** A nested section (`backoff`, `budget`, `breaker`): absent, `false` where `off` allows it
 * (the feature off), or an object whose keys are checked and values read by `read`. */
const section = (v, name, keys, read, off) => {
  if (v === undefined || (off && v === false)) return v;
  const o = object(v, name);
  checkKeys(o, `${name}.`, keys);
  return read(o);
};

const fallback = (v, i, list = "fallbacks") => {
  const path = `${list}[${i}]`;
  const r = object(v, path, "a route object such as { url, model }");
  checkKeys(r, `${path}.`, ["model", "url", "headers", "maxAttempts"]);
  const maxAttempts = int(r.maxAttempts, `${path}.maxAttempts`);
  if (maxAttempts !== undefined && !(maxAttempts >= 1 && maxAttempts <= MAX_ATTEMPTS)) {
    throw new RangeError(`${path}.maxAttempts must be between 1 and ${MAX_ATTEMPTS} (got ${maxAttempts})`);
  }
  const model = typed(r.model, `${path}.model`, "string", "a string");
  const href = typed(r.url, `${path}.url`, "string", "a string");
  let url;
  if (href !== undefined) {
    try {
      url = new URL(href);
    } catch {
      throw new TypeError(`${path}.url must be an absolute URL (got "${href}")`);
    }
    // What the request's own URL may be (request.js), checked here rather than at the outage
    // that first sends to it; the message leaves any password out.
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`${path}.url must be an http: or https: URL (got ${url.protocol})`);
    }
    if (url.username || url.password) {
      throw new TypeError(`${path}.url may not include credentials (user:password@); send them in its headers`);
    }
  }
  let headers = [];
  if (r.headers !== undefined) {
    try {
      headers = [...new Headers(r.headers)];
    } catch {
      fail(TypeError, `${path}.headers`, "a headers object of string values", r.headers);
    }
  }
  return { model, url: url?.href, origin: url?.origin, headers, maxAttempts };
};

/** `onEvent`, made harmless: what it throws, and a promise (or thenable) it rejects, are ignored
 * rather than surfacing as an unhandled rejection that would end a Node process. */
const listener = (f) =>
  f && ((event) => {
    try {
      const r = f(event);
      const then = (typeof r === "object" && r !== null) || typeof r === "function" ? r.then : undefined;
      if (typeof then === "function") then.call(r, undefined, () => {});
    } catch {}
  });

/**
 * The options of `createRetryFetch` (`forRetry` false) or `retry`/`createRetry` (true), checked:
 * their settings written as numbers into the wasm's memory at index `at` of a view of it as f64s
 * (options.rs, in its order), the rest returned as one flat object.
 */
export function checkOptions(options, forRetry, at) {
  const o = options === undefined ? {} : object(options, "options");
  checkKeys(o, "", KEYS);
  const maxAttempts = int(o.maxAttempts, "maxAttempts");
  const backoff = section(o.backoff, "backoff", ["initialMs", "maxMs", "multiplier", "jitter"], (b) => ({
    initialMs: ms(b.initialMs, "backoff.initialMs"),
    maxMs: ms(b.maxMs, "backoff.maxMs"),
    multiplier: number(b.multiplier, "backoff.multiplier"),
    jitter: typed(b.jitter, "backoff.jitter", "string", "a string"),
  }));
  if (backoff?.jitter !== undefined && !JITTERS.includes(backoff.jitter)) {
    throw new RangeError(`backoff.jitter must be "full", "equal", "decorrelated" or "none" (got "${backoff.jitter}")`);
  }
  const deadlineMs = ms(o.deadlineMs, "deadlineMs");
  const attemptTimeoutMs = ms(o.attemptTimeoutMs, "attemptTimeoutMs");
  const firstTokenTimeoutMs = ms(o.firstTokenTimeoutMs, "firstTokenTimeoutMs");
  const idleTimeoutMs = ms(o.idleTimeoutMs, "idleTimeoutMs");
  const maxRetryAfterMs = ms(o.maxRetryAfterMs, "maxRetryAfterMs");
  const idempotent = typed(o.idempotent, "idempotent", "boolean", "a boolean");
  const retryOn = o.retryOn === undefined ? undefined : array(o.retryOn, "retryOn");
  retryOn?.forEach((s, i) => {
    if (typeof s !== "number") fail(TypeError, `retryOn[${i}]`, "a number", s);
    if (!(Number.isInteger(s) && s >= 100 && s <= 599)) fail(RangeError, `retryOn[${i}]`, "an HTTP status from 100 to 599", s);
  });
  const budget = section(o.budget, "budget", ["maxTokens", "tokenRatio"], (b) => ({
    maxTokens: number(b.maxTokens, "budget.maxTokens"),
    tokenRatio: number(b.tokenRatio, "budget.tokenRatio"),
  }), true);
  const breaker = section(o.breaker, "breaker", ["failureThreshold", "cooldownMs", "maxCooldownMs"], (b) => ({
    failureThreshold: int(b.failureThreshold, "breaker.failureThreshold"),
    cooldownMs: ms(b.cooldownMs, "breaker.cooldownMs"),
    maxCooldownMs: ms(b.maxCooldownMs, "breaker.maxCooldownMs"),
  }), true);
  const pacing = typed(o.pacing, "pacing", "boolean", "a boolean");
  const health = section(o.health, "health", ["store", "refreshMs", "firstReadMs", "timeoutMs", "onError"], (h) => {
    const store = h.store;
    if (typeof field(store, "read") !== "function" || typeof field(store, "write") !== "function") {
      fail(TypeError, "health.store", "an object with read(keys) and write(records) methods", store);
    }
    const onError = typed(h.onError, "health.onError", "function", "a function");
    const timeoutMs = ms(h.timeoutMs, "health.timeoutMs") ?? 1000;
    if (timeoutMs < 1) fail(RangeError, "health.timeoutMs", `between 1 and ${MAX_MS} ms`, timeoutMs);
    const [refreshMs, firstReadMs] = [ms(h.refreshMs, "health.refreshMs") ?? 1000, ms(h.firstReadMs, "health.firstReadMs") ?? 50];
    typed(field(store, "pace"), "health.store.pace", "function", "a function");
    return new HealthLink(store, refreshMs, firstReadMs, timeoutMs, onError);
  });
  if (health && o.breaker === false) throw new RangeError("health shares what the breakers learn: it needs them (breaker is false)");
  const fn = (k) => typed(o[k], k, "function", "a function");
  const [fetch, onEvent, onExhausted] = [fn("fetch"), listener(fn("onEvent")), fn("onExhausted")];
  const fallbacks = o.fallbacks === undefined ? [] : array(o.fallbacks, "fallbacks").map((r, i) => fallback(r, i));
  const sensitive = o.sensitiveHeaders === undefined ? [] : array(o.sensitiveHeaders, "sensitiveHeaders");
  sensitive.forEach((h, i) => (typeof h === "string" && NAME.test(h)) || fail(TypeError, `sensitiveHeaders[${i}]`, "a header name", h));
  const signal = o.signal;
  if (signal !== undefined) {
    if (!forRetry) throw new TypeError("signal is not an option of createRetryFetch: pass init.signal with each call");
    if (!(signal instanceof AbortSignal)) fail(TypeError, "signal", "an AbortSignal", signal);
  }
  // `budget`/`breaker`: false (off), true (configured) or undefined (defaults).
  const out = numbersView();
  callNumbers({ maxAttempts, deadlineMs, attemptTimeoutMs, firstTokenTimeoutMs, idleTimeoutMs, idempotent }, out, at);
  [
    backoff?.initialMs, backoff?.maxMs, backoff?.multiplier, backoff?.jitter === undefined ? NaN : JITTERS.indexOf(backoff.jitter), maxRetryAfterMs,
    bit(retryOn && true), bit(budget && true), budget?.maxTokens, budget?.tokenRatio,
    bit(breaker && true), breaker?.failureThreshold, breaker?.cooldownMs, breaker?.maxCooldownMs, bit(pacing),
    bit(health && true), bit(typeof health?.store.pace === "function"),
  ].forEach((v, i) => (out[at + 6 + i] = v ?? NaN));
  return {
    retryOn, health, fetch, onEvent, onExhausted, signal,
    fallbacks, attempts: attemptsOf(fallbacks),
    sensitive: [...SENSITIVE, ...sensitive.map((h) => h.toLowerCase())],
    keyIds: new Map(), keyNames: [], lastKey: [undefined, undefined, 0], keyGen: 0,
  };
}

/** What a single call may change of its client's options (`init.retry` of a retryFetch call,
 * the second argument of a createRetry call): attempts, the deadline, timeouts, idempotency,
 * and its fallbacks (`false`: none; an array: these instead of the client's). `false` for the
 * whole: one attempt, no fallback. Checked like the client's options, named as the user wrote
 * them (`init.retry.maxAttempts`). Undefined when nothing is overridden. */
const PER_CALL = ["maxAttempts", "deadlineMs", "attemptTimeoutMs", "firstTokenTimeoutMs", "idleTimeoutMs", "idempotent", "fallbacks"];

export function callOptions(v, path) {
  if (v === undefined) return undefined;
  if (v === false) return { path, maxAttempts: 1, fallbacks: [] };
  const o = object(v, path, "an object or false");
  checkKeys(o, `${path}.`, PER_CALL);
  const at = (k) => `${path}.${k}`;
  const maxAttempts = int(o.maxAttempts, at("maxAttempts"));
  if (maxAttempts !== undefined && !(maxAttempts >= 1 && maxAttempts <= MAX_ATTEMPTS)) {
    throw new RangeError(`${at("maxAttempts")} must be between 1 and ${MAX_ATTEMPTS} (got ${maxAttempts})`);
  }
  const f = o.fallbacks;
  if (f !== undefined && f !== false && !Array.isArray(f)) fail(TypeError, at("fallbacks"), "an array of routes or false", f);
  return {
    path,
    maxAttempts,
    deadlineMs: ms(o.deadlineMs, at("deadlineMs")),
    attemptTimeoutMs: ms(o.attemptTimeoutMs, at("attemptTimeoutMs")),
    firstTokenTimeoutMs: ms(o.firstTokenTimeoutMs, at("firstTokenTimeoutMs")),
    idleTimeoutMs: ms(o.idleTimeoutMs, at("idleTimeoutMs")),
    idempotent: typed(o.idempotent, at("idempotent"), "boolean", "a boolean"),
    fallbacks: f === undefined ? undefined : f === false ? [] : array(f, at("fallbacks")).map((r, i) => fallback(r, i, at("fallbacks"))),
  };
}

/** Each route's own maxAttempts (the primary: the call's). */
const attemptsOf = (fallbacks) => [undefined, ...fallbacks.map((f) => f.maxAttempts)];

/** A call's routes' own attempts: the client's list (made once), unless the call has its own routes. */
export const routeAttempts = (options, call) => (call?.fallbacks ? attemptsOf(call.fallbacks) : options.attempts);
