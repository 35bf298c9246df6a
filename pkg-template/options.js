// Checks the options object where JavaScript values are at home, and hands the wasm a flat
// copy of plain values: a wrong type or an unknown key (a typo such as `maxAtempts`) is a
// TypeError, a value out of range a RangeError, each naming the option as the user wrote it.
// Rules that relate options to each other (maxMs ≥ initialMs, deadlines ≥ 1 ms, …) are the
// core's own (Config::validate in the wasm), which throws a RangeError naming the option too.

// The core's own limits (policy/config.rs MAX_MS, MAX_ATTEMPTS), which it checks again.
const MAX_MS = 86_400_000; // a day: longer is almost surely a unit mistake
const MAX_ATTEMPTS = 100;
const JITTERS = ["full", "equal", "decorrelated", "none"];
const KEYS = [
  "maxAttempts", "backoff", "deadlineMs", "attemptTimeoutMs", "retryOn", "maxRetryAfterMs", "idempotent",
  "budget", "breaker", "fetch", "onEvent", "fallbacks", "onExhausted", "sensitiveHeaders", "signal",
];

/** `got string "3"`, `got number 5`, `got object`: what a message says about a value. */
const got = (v) =>
  typeof v === "string" ? `got string "${v}"`
  : typeof v === "number" || typeof v === "boolean" ? `got ${typeof v} ${v}`
  : v === null ? "got null"
  : `got ${typeof v}`;

const fail = (Class, path, rule, v) => {
  throw new Class(`${path} must be ${rule} (${got(v)})`);
};

const object = (v, path) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(TypeError, path, "an object", v);
  return v;
};

const array = (v, path) => {
  if (!Array.isArray(v)) fail(TypeError, path, "an array", v);
  return Array.from({ length: Math.min(v.length, 10_000) }, (_, i) => v[i]);
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

const fallback = (v, i) => {
  const path = `fallbacks[${i}]`;
  const r = object(v, path);
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

/**
 * The options of `createRetryFetch` (`forRetry` false) or `retry`/`createRetry` (true), checked,
 * as the flat object the wasm client reads. `undefined` stays `undefined` (all defaults).
 */
export function checkOptions(options, forRetry) {
  if (options === undefined) return undefined;
  const o = object(options, "options");
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
  const breaker = section(o.breaker, "breaker", ["failureThreshold", "cooldownMs"], (b) => ({
    failureThreshold: int(b.failureThreshold, "breaker.failureThreshold"),
    cooldownMs: ms(b.cooldownMs, "breaker.cooldownMs"),
  }), true);
  const fn = (k) => typed(o[k], k, "function", "a function");
  const [fetch, onEvent, onExhausted] = [fn("fetch"), fn("onEvent"), fn("onExhausted")];
  const fallbacks = o.fallbacks === undefined ? [] : array(o.fallbacks, "fallbacks").map(fallback);
  const sensitive = o.sensitiveHeaders === undefined ? [] : array(o.sensitiveHeaders, "sensitiveHeaders");
  sensitive.forEach((h, i) => typeof h === "string" || fail(TypeError, `sensitiveHeaders[${i}]`, "a string", h));
  const signal = o.signal;
  if (signal !== undefined) {
    if (!forRetry) throw new TypeError("signal is not an option of createRetryFetch: pass init.signal with each call");
    if (!(signal instanceof AbortSignal)) fail(TypeError, "signal", "an AbortSignal", signal);
  }
  // Flat, for the wasm; `budget`/`breaker`: false (off), true (configured) or undefined (defaults).
  return {
    maxAttempts, ...backoff, deadlineMs, attemptTimeoutMs, maxRetryAfterMs, idempotent, retryOn,
    budget: budget && true, ...budget, breaker: breaker && true, ...breaker,
    fetch, onEvent, onExhausted, fallbacks,
    sensitiveHeaders: sensitive.map((h) => h.toLowerCase()), // added to the wasm's defaults
    signal,
  };
}
