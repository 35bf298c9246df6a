// The JavaScript half of the wasm layer, imported by it (src/js/*.rs): the work that is about
// JavaScript values rather than decisions. It checks the options, reads a caller's request once
// and builds what each route sends, sorts what a `retry(fn)` callback threw, and builds the
// events, reports and errors users get. The wasm keeps the policy and the driving: the engine,
// fetch, timers, signals. (This is a wasm-bindgen snippet: it may not import other files.)

// ---------------------------------------------------------------------------------------------
// Options. Checked where JavaScript values are at home: a wrong type or an unknown key (a typo
// such as `maxAtempts`) is a TypeError, a value out of range a RangeError, each naming the option
// as the user wrote it. Rules relating options to each other (maxMs ≥ initialMs, …) are the
// core's own (Config::validate), which throws a RangeError naming the option too.

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

/** Reads a property of a value that may be anything (a Proxy, a getter that throws). */
const field = (v, k) => {
  try {
    return v?.[k];
  } catch {
    return undefined;
  }
};

const text = (v) => (typeof v === "string" ? v : "");

/** An object made by `{ … }` (or with a null prototype), not a URL, Map, Date, Promise, … */
const plain = (v) => {
  try {
    const proto = Object.getPrototypeOf(v);
    return proto === Object.prototype || proto === null;
  } catch {
    return false;
  }
};

/** `got string "3"`, `got number 5`, `got object`, `got URL`: what a message says about a value. */
const got = (v) =>
  typeof v === "string" ? `got string "${v.length > 100 ? `${v.slice(0, 100)}…` : v}"`
  : typeof v === "number" || typeof v === "boolean" ? `got ${typeof v} ${v}`
  : v === null ? "got null"
  : Array.isArray(v) ? "got array"
  : typeof v === "object" && !plain(v) ? `got ${text(field(field(v, "constructor"), "name")) || "object"}`
  : `got ${typeof v}`;

const fail = (Class, path, rule, v) => {
  throw new Class(`${path} must be ${rule} (${got(v)})`);
};

const object = (v, path, what = "an object") => {
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
 * The options of `createRetryFetch` (`forRetry` false) or `retry`/`createRetry` (true), checked,
 * as the flat object the wasm reads (options.rs).
 */
export function checkOptions(options, forRetry) {
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
  sensitive.forEach((h, i) => typeof h === "string" || fail(TypeError, `sensitiveHeaders[${i}]`, "a string", h));
  const signal = o.signal;
  if (signal !== undefined) {
    if (!forRetry) throw new TypeError("signal is not an option of createRetryFetch: pass init.signal with each call");
    if (!(signal instanceof AbortSignal)) fail(TypeError, "signal", "an AbortSignal", signal);
  }
  // Flat; `budget`/`breaker`: false (off), true (configured) or undefined (defaults).
  return {
    maxAttempts, ...backoff, deadlineMs, attemptTimeoutMs, firstTokenTimeoutMs, idleTimeoutMs, maxRetryAfterMs,
    idempotent, retryOn,
    budget: budget && true, ...budget, breaker: breaker && true, ...breaker, pacing, health,
    sharePacing: typeof health?.store.pace === "function",
    fetch, onEvent, onExhausted, signal,
    fallbacks, attempts: attemptsOf(fallbacks),
    sensitive: [...SENSITIVE, ...sensitive.map((h) => h.toLowerCase())],
    keyIds: new Map(), keyNames: [], lastKey: [undefined, undefined, 0],
  };
}

/** The number in its client of the route key `key(part, model)`: the wasm keeps each key once, by
 * number (`keyNames`). Found by its two parts, so a call builds no key string it has seen before. */
const keyId = (options, part, model) => {
  // The key found last, compared first: a call's model is a new string each time, and looking
  // it up hashes it.
  const last = options.lastKey;
  if (part === last[0] && model === last[1]) return last[2];
  let byModel = options.keyIds.get(part);
  if (byModel === undefined) options.keyIds.set(part, (byModel = new Map()));
  let id = byModel.get(model);
  if (id === undefined) {
    id = options.keyNames.push(key(part, model)) - 1;
    byModel.set(model, id);
  }
  options.lastKey = [part, model, id];
  return id;
};

/** Routes a call's shape carries at most; a call with more is read from its object (drive.rs). */
const SHAPE_ROUTES = 16;

/** The wasm's memory (`setMemory`, once per client), and a view of it as numbers, made again
 * only when the memory has grown (which detaches the buffer the old view was over): a call's
 * shape is written through it at an index the wasm gives, where a view made for each call (as
 * wasm-bindgen hands a slice over) cost an allocation and two builtins' code a call. */
let memory;
let numbers;
export const setMemory = (m) => {
  memory = m;
};
const numbersView = () => (numbers !== undefined && numbers.byteLength !== 0 ? numbers : (numbers = new Float64Array(memory.buffer)));

/**
 * What the wasm needs of a call (from `readRequest` or `fnCall`), as numbers written into wasm
 * memory from index `at` of a view of it as f64s (drive.rs `Shape`), so it is handed over in one
 * call: `[flags, routes, keyId, attempts, keyId, attempts, …]`; flags: 1 idempotent, 2 has a
 * signal, 4 has per-call options, 8 has more routes than a shape holds; attempts NaN for the
 * call's own.
 */
export function shape(call, at) {
  const { ids, attempts } = call;
  const out = numbersView();
  out[at] = (call.idempotent ? 1 : 0) | (call.signal !== undefined ? 2 : 0) | (call.call !== undefined ? 4 : 0)
    | (ids.length > SHAPE_ROUTES ? 8 : 0);
  out[at + 1] = ids.length;
  for (let i = 0; i < ids.length && i < SHAPE_ROUTES; i++) {
    out[at + 2 + 2 * i] = ids[i];
    out[at + 3 + 2 * i] = attempts[i] ?? NaN;
  }
}

/** The key of number `id` in the client of `options`. */
export const keyName = (options, id) => options.keyNames[id];


/** What a single call may change of its client's options (`init.retry` of a retryFetch call,
 * the second argument of a createRetry call): attempts, the deadline, timeouts, idempotency,
 * and its fallbacks (`false`: none; an array: these instead of the client's). `false` for the
 * whole: one attempt, no fallback. Checked like the client's options, named as the user wrote
 * them (`init.retry.maxAttempts`). Undefined when nothing is overridden. */
const PER_CALL = ["maxAttempts", "deadlineMs", "attemptTimeoutMs", "firstTokenTimeoutMs", "idleTimeoutMs", "idempotent", "fallbacks"];

function callOptions(v, path) {
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

/** Numbers the calls of this module instance, for `callId` in events and `id` in reports. */
let calls = 0;

/** A `retry(fn)` call: `fn` checked, and its routes named, with a createRetry call's `opts`
 * (`{ signal, …per-call options }`, see `callOptions`). */
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
  const routes = fnRoutes(fallbacks);
  const ids = routes.keys.map((k) => keyId(options, k, undefined));
  return { ...routes, ids, attempts: routeAttempts(options, call), fallbacks, call, signal, id: ++calls };
}

/** Each route's own maxAttempts (the primary: the call's). */
const attemptsOf = (fallbacks) => [undefined, ...fallbacks.map((f) => f.maxAttempts)];

/** A call's routes' own attempts: the client's list (made once), unless the call has its own routes. */
const routeAttempts = (options, call) => (call?.fallbacks ? attemptsOf(call.fallbacks) : options.attempts);

// ---------------------------------------------------------------------------------------------
// Shared health (policy/health.rs): a client's link to a store that instances share (a Durable
// Object, Deno KV, Redis, or memory). The store is read in the background, at most every
// `refreshMs`, for every route the client has met; a call waits for a read only while its client
// has never read one, and then at most `firstReadMs`. What the breakers learn is written in the
// background, one batch per turn of the event loop. A read or write is given up after
// `timeoutMs`. A store that fails or hangs delays no call beyond the first bound, holds up no
// later read or write, and is told to `onError`.
// A store with `pace` also hands out send slots for busy routes (policy/pacing.rs, Shared): the
// asks of one turn go as one batch; a failed or late batch is answered "none" (the calls pace on
// their own) and pacing is not shared again for `refreshMs`.

const RECORD = ["openedAt", "openUntil", "closedAt", "cooledUntil"];
const instant = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);

class HealthLink {
  constructor(store, refreshMs, firstReadMs, timeoutMs, onError) {
    Object.assign(this, { store, refreshMs, firstReadMs, timeoutMs, onError });
    this.keys = new Set();
    this.readAt = -Infinity;
    this.reading = undefined;
    this.read = false; // a read has completed, failed, or was not waited for
    this.queue = new Map();
    this.batch = undefined; // the batch this turn's news go into
    this.writes = new Set(); // [promise, started at]
    this.asks = new Map(); // route key and within → { key, n, interval, burst, tat, within, answers: [resolve] }: this turn's
    this.asking = false;
    this.paceDownUntil = 0;
    /** Set by the client (api.js): takes records as `[key, openedAt, openUntil, closedAt, cooledUntil, …]`. */
    this.sink = undefined;
  }

  error(e, op) {
    try {
      this.onError?.(e, op);
    } catch {}
  }

  /** The store's answer, or a TimeoutError after `timeoutMs`. */
  bounded(call) {
    let id;
    const late = new Promise((_, reject) => {
      id = setTimeout(() => reject(new DOMException(`the health store took over ${this.timeoutMs} ms (health.timeoutMs)`, "TimeoutError")), this.timeoutMs);
    });
    return Promise.race([new Promise((resolve) => resolve(call())), late]).finally(() => clearTimeout(id));
  }

  /** Before a call on routes `keys`: starts a read when one is due; a promise to wait for
   * (bounded) while none has completed yet, else undefined. */
  before(keys) {
    for (const k of keys) this.keys.add(k);
    const now = Date.now();
    // A read past its bound is abandoned (a Worker drops what a finished request left running).
    if (this.reading !== undefined && now - this.readAt > this.timeoutMs) this.reading = undefined;
    if (this.reading === undefined && now - this.readAt >= this.refreshMs) this.start(now);
    if (this.read || this.reading === undefined || this.firstReadMs === 0) return undefined;
    let id;
    const late = () => (this.read = true); // a store this slow is not waited for again
    return Promise.race([
      this.reading.finally(() => clearTimeout(id)),
      new Promise((resolve) => (id = setTimeout(() => resolve(late()), this.firstReadMs))),
    ]);
  }

  start(now) {
    this.readAt = now;
    const reading = (async () => {
      try {
        const records = await this.bounded(() => this.store.read([...this.keys]));
        const flat = [];
        for (const key of this.keys) {
          const r = field(records, key);
          if (typeof r === "object" && r !== null) flat.push(key, ...RECORD.map((f) => instant(field(r, f))));
        }
        if (flat.length) this.sink?.(flat);
      } catch (e) {
        this.error(e, "read");
      } finally {
        if (this.reading === reading) this.reading = undefined;
        this.read = true;
      }
    })();
    this.reading = reading;
  }

  /** Records the breakers have news of (`[key, openedAt, openUntil, closedAt, cooledUntil, …]`),
   * merged into this turn's batch. Batches are written independently: a store merges by max,
   * so their order does not matter, and one that hangs holds up no other. */
  tell(flat) {
    for (let i = 0; i + 4 < flat.length; i += 5) {
      const old = this.queue.get(flat[i]);
      this.queue.set(flat[i], Object.fromEntries(RECORD.map((f, j) => [f, Math.max(flat[i + 1 + j], old?.[f] ?? 0)])));
    }
    this.batch ??= Promise.resolve().then(() => {
      this.batch = undefined;
      const records = Object.fromEntries(this.queue);
      this.queue.clear();
      const entry = [undefined, Date.now()];
      entry[0] = this.bounded(() => this.store.write(records))
        .catch((e) => this.error(e, "write"))
        .finally(() => this.writes.delete(entry));
      this.writes.add(entry);
    });
  }

  /** A send slot for route `key` from the store's shared bucket (policy/pacing.rs Ask; `within`
   * undefined: however late), as a promise of the slot (ms since the epoch) or undefined; rejects
   * with the caller's reason when `signal` aborts first. Undefined at once while pacing is not shared. */
  pace(key, interval, burst, tat, within, signal) {
    if (Date.now() < this.paceDownUntil) return undefined;
    const id = `${within}\n${key}`;
    let ask = this.asks.get(id);
    if (ask === undefined) this.asks.set(id, (ask = { key, n: 0, interval, burst, tat, within, answers: [] }));
    // The batch asks as its most careful member: the longest interval, the smallest burst, the latest count.
    Object.assign(ask, { n: ask.n + 1, interval: Math.max(ask.interval, interval), burst: Math.min(ask.burst, burst), tat: Math.max(ask.tat, tat) });
    const slot = new Promise((resolve) => ask.answers.push(resolve));
    if (!this.asking) {
      this.asking = true;
      queueMicrotask(() => this.ask());
    }
    return signal ? aborted(slot, signal) : slot;
  }

  ask() {
    const asks = this.asks;
    this.asks = new Map();
    this.asking = false;
    const batch = [...asks.values()].map(({ key, n, interval, burst, tat, within }) => (within === undefined ? { key, n, interval, burst, tat } : { key, n, interval, burst, tat, within }));
    this.bounded(() => this.store.pace(batch)).then(
      (slots) => {
        // A slot is an instant; one more than a day away is no answer (the call paces on its own).
        const latest = Date.now() + 86_400_000;
        const slot = (v) => (instant(v) > 0 && v < latest ? v : undefined);
        let i = 0;
        for (const { answers } of asks.values()) {
          const given = Array.isArray(slots) ? slots[i++] : undefined;
          answers.forEach((resolve, j) => resolve(Array.isArray(given) ? slot(given[j]) : undefined));
        }
      },
      (e) => {
        this.error(e, "pace");
        this.paceDownUntil = Date.now() + this.refreshMs;
        for (const { answers } of asks.values()) answers.forEach((resolve) => resolve(undefined));
      },
    );
  }

  /** Resolves when what was told so far is written and a read under way is done, each within
   * `timeoutMs` (a Worker hands it to ctx.waitUntil). */
  async flush() {
    await this.batch;
    const now = Date.now();
    const live = [...this.writes].filter(([, at]) => now - at <= this.timeoutMs).map(([w]) => w);
    if (this.reading !== undefined && now - this.readAt <= this.timeoutMs) live.push(this.reading);
    await Promise.all(live);
  }
}

/** Before a call: the client's health link's bounded wait, if any (see `HealthLink.before`). */
export const healthBefore = (options, names) => options.health?.before(names.ids.map((id) => options.keyNames[id]));

export const healthTell = (options, flat) => options.health?.tell(flat);

/** A send slot from the client's shared bucket (see `HealthLink.pace`). */
export const healthPace = (options, key, interval, burst, tat, within, signal) => options.health?.pace(key, interval, burst, tat, within, signal);

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

/** The signal of a call object (`readRequest`, `fnCall`: each checked that it is an AbortSignal
 * and flagged it in the call's shape): a plain property read, where the wasm's own lookup by name
 * (`Reflect.get` with a key it made) missed V8's caches. */
export const signalOf = (call) => call.signal;

/** An attempt's own AbortController. Made here rather than through web-sys, whose binding may
 * throw and so goes through the glue's catching wrapper (a closure and an arguments object). */
export const abortController = () => new AbortController();

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

/** `p`, or a rejection with the signal's reason when it aborts first. */
const aborted = (p, signal) =>
  isAborted(signal)
    ? Promise.reject(signal.reason)
    : new Promise((resolve, reject) => {
        const abort = () => reject(signal.reason);
        signal.addEventListener("abort", abort, { once: true });
        p.then(resolve).finally(() => signal.removeEventListener("abort", abort));
      });

// ---------------------------------------------------------------------------------------------
// retryFetch's request: read once, replayed on every attempt and route. A string or absent body
// (what the SDKs send) is passed through as given: no copy. Any other body — ArrayBuffer, typed
// array, Blob, FormData, URLSearchParams, ReadableStream, or a `Request` as input — is read once
// into bytes through `new Request(input, init)`, so every attempt sends the same bytes
// (FormData's multipart boundary included).

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

/** The top-level `"model"` of a JSON string body, found without parsing the whole prompt: the
 * first `"model"`, then `:` and a string with no escape in it, within 300 characters. Scanned
 * by hand, as every call does this: a pattern's match and a slice are two allocations more. */
const modelOf = (body) => {
  const at = typeof body === "string" ? body.indexOf('"model"') : -1;
  if (at < 0) return undefined;
  let i = skipSpace(body, at + 7);
  if (body.charCodeAt(i) !== 58) return undefined; // :
  i = skipSpace(body, i + 1);
  if (body.charCodeAt(i) !== 34) return undefined; // "
  const end = body.indexOf('"', i + 1);
  if (end < 0 || end >= at + 300) return undefined;
  const model = body.slice(i + 1, end);
  return model.includes("\\") ? undefined : model;
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
    json = JSON.parse(typeof body === "string" ? body : new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {}
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TypeError(`fallbacks[${i}].model needs a JSON object request body`);
  }
  json.model = model;
  return JSON.stringify(json);
};

/** The breaker key of a route: its origin and model. */
const key = (origin, model) => (model === undefined ? origin : `${origin} ${model}`);

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

/** A header name (an RFC 9110 token). */
const NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
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
  const parsed = new Headers(headers);
  return [parsed, parsed.has("idempotency-key")];
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
  const body = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
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
    fallbacks, attempts: routeAttempts(options, call), call, id: ++calls,
  };
}

/** `name\nvalue\n`, the form the wasm takes headers in (one string, one crossing: policy/mod.rs
 * Headers); "" for a header that is absent, or not a string, or holds a newline (no valid one does). */
const line = (n, v) => (typeof v === "string" && !v.includes("\n") ? `${n}\n${v}\n` : "");

/** A response's headers of `names` (the core's wait-hint and rate-limit headers), as lines. */
export function hintHeaders(res, names) {
  let out = "";
  try {
    const h = res.headers;
    for (const n of names) out += line(n, h.get(n));
  } catch {}
  return out;
}

/** The two families of rate-limit headers for pacing: the headers whose presence marks the family
 * (the first is always read), those read whenever it is there, and token limits as [remaining,
 * reset] pairs whose reset is read only when the remaining may be 0: the core only uses a token
 * limit's reset when it is spent (`spent_reset` in hints.rs). */
const LIMITS = [
  {
    marks: ["x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"],
    always: ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"],
    spent: [["x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]],
  },
  {
    marks: ["anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-tokens-remaining"],
    always: ["anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"],
    spent: [
      ["anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"],
      ["anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"],
      ["anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"],
    ],
  },
];
/** The family found last: looked for first (a process mostly talks to one provider). */
let lastLimits = 0;
/** Whether a remaining count may be 0 to the core (which reads "0", "00", "0.0"): no digit 1–9. */
const mayBeZero = (v) => {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 49 && c <= 57) return false;
  }
  return true;
};

/** A response's rate-limit headers for pacing, as lines (see `line`); undefined when it has none.
 * Each lookup costs (Node's `Headers.get` checks and lowercases the name), so the family seen
 * last is looked for first, a marker's value is kept, and a token limit's reset is read only
 * when that limit is spent: OpenAI's usual response takes four lookups, Anthropic's six, and one
 * with neither family four. (A response with both families, which no provider sends, is read as
 * the family seen last.) */
export function limitHeaders(h) {
  for (let j = 0; j < 2; j++) {
    const i = lastLimits ^ j;
    const { marks, always, spent } = LIMITS[i];
    for (const mark of marks) {
      const found = h.get(mark);
      if (found === null) continue;
      lastLimits = i;
      let out = "";
      for (const n of always) out += line(n, n === mark ? found : h.get(n));
      for (const [n, reset] of spent) {
        const v = n === mark ? found : h.get(n);
        if (v === null) continue;
        out += line(n, v);
        if (mayBeZero(v)) out += line(reset, h.get(reset));
      }
      return out;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Event streams (fetch.rs): the wasm reads a 2xx `text/event-stream` body up to its commit point
// (policy/stream.rs decides where that is), holding the chunks; the caller then gets a Response
// whose body is those chunks and the rest, passed through one chunk at a time.

const EVENT_STREAM = "text/event-stream";
/** Whether a content type is `text/event-stream` (any case; leading whitespace skipped, then
 * anything may follow, as a parameter does): `/^\s*text\/event-stream/i` as a loop, since it runs
 * on every successful call (see `validValue`). */
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

/** The Response the caller gets: `res`'s status and headers; a body of the `held` chunks, then
 * the rest of `reader` as it comes. With `idleMs`, a gap longer than that between chunks errors
 * the body with a `TimeoutError` (the SDKs raise it) and cancels the stream. An error after the
 * commit (a transport error, the idle timeout; not the caller's abort) is the caller's to see;
 * `onEvent` is told (`{ type: "streamError", phase: "after-commit", error }`) and the call's
 * report gets `streamError: { phase, error }`. `n`: the call's names. */
export function resumed(res, held, reader, idleMs, options, n, route) {
  let i = 0;
  let timer;
  const idle = () =>
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new DOMException(`no data for ${idleMs} ms (idleTimeoutMs)`, "TimeoutError")), idleMs);
    });
  const failed = (e) => {
    clearTimeout(timer);
    cancel(reader);
    const error = text(field(e, "name")) || typeof e;
    if (error !== "AbortError") {
      // Told to onEvent, and kept in the call's report (built by the time a body is read).
      noteStreamError(out, { phase: "after-commit", error });
      options.onEvent?.(clean({ type: "streamError", callId: n.id, phase: "after-commit", error, route, model: n.models[route] }));
    }
    throw e;
  };
  // No async function, try or timer per chunk unless an idle timeout asks for one: each chunk
  // after the commit costs one read and one enqueue.
  const body = new ReadableStream({
    pull(controller) {
      if (i < held.length) return controller.enqueue(held[i++]);
      const next = idleMs === undefined ? reader.read() : Promise.race([reader.read(), idle()]);
      return next.then((r) => {
        clearTimeout(timer);
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      }, failed);
    },
    cancel(reason) {
      clearTimeout(timer);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  const out = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  return out;
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

/** A parked call's first attempt (fetch.rs): `route` sent with the caller's signal, and what its
 * transport settles with handed to the wasm in one call, `settle(id, value, status, seen, now)`:
 * `status` -1 for a rejection, 0 for a value that is not a response, THREW when the route's
 * request cannot be built (at once) or fetch refused it; `seen`, below 400, what `success` finds;
 * `now`, `Date.now()` (read here, the wasm crosses out for it once fewer). */
export const sendParked = (req, route, transport, id, limits, settle) => {
  let sent;
  try {
    sent = send(req, route, req.signal, transport);
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

// ---------------------------------------------------------------------------------------------
// retry(fn): the routes, each attempt's context, and what a thrown error is.

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

/** The next item, as `[done, value]`. */
export const nextItem = (iter) => Promise.resolve(iter.next()).then((r) => [r?.done === true, r?.value]);

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
 * private state stays its own. An object that cannot take them (frozen) is stood in for. */
export function resumedItems(orig, held, iter) {
  let used = false;
  const items = () => {
    if (used) throw new TypeError("this stream has already been iterated");
    used = true;
    return (async function* () {
      let done = false;
      try {
        yield* held;
        for (;;) {
          const r = await iter.next();
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
  const status = field(e, "status");
  if (typeof status === "number" && status >= 100 && status <= 599) {
    const out = [status, bodyOf(e), ""];
    const h = field(e, "headers");
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
  const name = text(field(e, "name"));
  const message = text(field(e, "message")).toLowerCase();
  const code = text(field(e, "code"));
  const causeCode = text(field(field(e, "cause"), "code"));
  if (name.includes("Timeout") || code === "UND_ERR_CONNECT_TIMEOUT") return [0];
  if (
    name.includes("Connection") || NETWORK_CODES.includes(code) || NETWORK_CODES.includes(causeCode)
    || (name === "TypeError" && NETWORK_MESSAGES.some((m) => message.includes(m)))
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

/** An SDK error's body as the classifier reads it: its `code`, `type` and `error` as JSON. */
const bodyOf = (e) => {
  try {
    return JSON.stringify({ code: field(e, "code"), type: field(e, "type"), error: field(e, "error") });
  } catch {
    return undefined;
  }
};

// ---------------------------------------------------------------------------------------------
// What users get: events (`onEvent`), reports (`retryReport`, `onExhausted`) and errors. They
// carry no header, body or full URL (a breaker key names a route's origin and model only).

/** The error for a transport that resolved to something that is not a response. */
export const notResponse = (v) => new TypeError(`fetch resolved to a non-Response (${got(v)})`);

/** Leaves out fields that are undefined. */
const clean = (o) => {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
};

// Every event and report names its call (`callId`, `id`): `n` is the call's names (from
// `readRequest` or `fnCall`): its id, and each route's model.

const retryEvent = (n, route, attempt, delayMs, reason, status, wait, hint) =>
  clean({ type: "retry", callId: n.id, attempt, delayMs, reason, status, hint: hint ? wait : undefined, wait, route, model: n.models[route] });

const attemptEvent = (n, route, attempt) =>
  clean({ type: "attempt", callId: n.id, attempt, route, model: n.models[route] });

const fallbackEvent = (n, from, to, reason, status) =>
  clean({ type: "fallback", callId: n.id, from, to, reason, status, fromModel: n.models[from], toModel: n.models[to] });

const breakerEvent = (n, key, from, to) => ({ type: "breaker", callId: n.id, key, from, to });

/** `wait`: what held the route — "breaker" (open), "cooling" (a 429's hint) or "pacing". */
const skipEvent = (n, route, retryInMs, wait) =>
  clean({ type: "skip", callId: n.id, route, model: n.models[route], reason: wait === "breaker" ? "circuit-open" : wait, retryInMs });

const commitEvent = (n, route, attempt, firstTokenMs) =>
  clean({ type: "commit", callId: n.id, route, model: n.models[route], attempt, firstTokenMs });

const waitEvent = (n, route, delayMs, wait, hint) =>
  clean({ type: "wait", callId: n.id, delayMs, wait, hint: hint ? wait : undefined, route, model: n.models[route] });

const giveUpEvent = (n, reason, attempts, status) => clean({ type: "giveUp", callId: n.id, reason, attempts, status });

const successEvent = (n, route, attempts, totalMs, fallback) =>
  clean({ type: "success", callId: n.id, attempts, totalMs, route, model: n.models[route], fallback });

/** Breaker states by the index the wasm sends (policy/breaker.rs `State`, in its order). */
const STATES = ["closed", "open", "half-open"];

/** An event from the wasm (errors.rs `event`): its kind and fields as numbers in `f` — reasons
 * and breaker states as indexes, -1 for no status, 1 for true — and `text`, the wait's cause or
 * a breaker's key. One binding for every kind: each distinct binding signature costs the wasm's
 * compile at start (V8 builds a wrapper for each). */
export function event(n, f, text) {
  switch (f[0]) {
    case 0: return retryEvent(n, f[1], f[2], f[3], REASONS[f[4]], opt(f[5]), text, f[6] === 1);
    case 1: return attemptEvent(n, f[1], f[2]);
    case 2: return commitEvent(n, f[1], f[2], f[3]);
    case 3: return waitEvent(n, f[1], f[2], text, f[3] === 1);
    case 4: return fallbackEvent(n, f[1], f[2], REASONS[f[3]], opt(f[4]));
    case 5: return skipEvent(n, f[1], f[2], text);
    case 6: return breakerEvent(n, text, STATES[f[1]], STATES[f[2]]);
    case 7: return giveUpEvent(n, REASONS[f[1]], f[2], opt(f[3]));
    default: return successEvent(n, f[1], f[2], f[3], f[4] === 1);
  }
}

/** The report of each value a call resolved or rejected with (the Response, the error): kept as
 * the call's names and the flat numbers the wasm recorded, and built on first `retryReport`, since
 * almost nobody asks (a later `streamError` is kept beside them). A Response carries its own under
 * a symbol: a WeakMap entry per call makes every garbage collection walk them (3–5 µs a call);
 * any other value is kept in the WeakMap. */
const REPORTS = new WeakMap();
const REPORT = Symbol("llm-retry report");
const kept = (v) => (v instanceof Response ? v[REPORT] : REPORTS.get(v));

/** Reason names by the index the wasm sends (set once, from the core's own list). */
let REASONS = [];
export const setReasons = (list) => {
  REASONS = list.split(",");
};

const opt = (x) => (x < 0 ? undefined : x);

/** The report object from the wasm's flat numbers (`flat`: see errors.rs `report`). */
function buildReport(n, f) {
  const attempts = [];
  const count = f[5];
  let i = 6;
  for (let a = 0; a < count; a++, i += 5) {
    const route = f[i];
    attempts.push(clean({
      route, model: n.models[route], status: opt(f[i + 1]), reason: REASONS[f[i + 2]], waitedMs: f[i + 3], inStream: f[i + 4] === 1 || undefined,
    }));
  }
  const route = opt(f[2]);
  return clean({
    id: n.id, attempts, totalWaitMs: f[0], durationMs: f[1], route, model: route === undefined ? undefined : n.models[route],
    fallback: f[3] === 1, skipped: f.slice(i), firstTokenMs: opt(f[4]),
  });
}

export function reportOf(v) {
  const k = kept(v);
  if (k === undefined || k.built !== undefined) return k?.built;
  k.built = buildReport(k.n, k.flat);
  if (k.streamError !== undefined) k.built.streamError = k.streamError;
  return k.built;
}

/** The report for `onExhausted` and errors, built now; `flat` is a view of wasm memory. */
export const report = (n, flat) => buildReport(n, Array.from(flat));

const keep = (ended, n, flat) => {
  const k = { n, flat, built: undefined, streamError: undefined };
  if (ended instanceof Response) ended[REPORT] = k;
  else if ((typeof ended === "object" && ended !== null) || typeof ended === "function") REPORTS.set(ended, k);
};

/** Keeps the report for `ended` (what the call resolved or rejected with) when that is an
 * object, unbuilt: `flat` is a view of wasm memory, copied. */
export const keepReport = (n, flat, ended) => keep(ended, n, Array.from(flat));

/** `keepReport` for the common call, of one attempt and no route skipped, in plain numbers. */
export const keepReport1 = (n, ended, wait, duration, route, fallback, firstToken, aRoute, status, reason, waited, inStream) =>
  keep(ended, n, [wait, duration, route, fallback, firstToken, 1, aRoute, status, reason, waited, inStream]);

/** Adds a committed stream's later error to the report kept for `res`. */
const noteStreamError = (res, streamError) => {
  const k = kept(res);
  if (k === undefined) return;
  k.streamError = streamError;
  if (k.built !== undefined) k.built.streamError = streamError;
};

// Errors are plain `Error`s with a stable `name` and extra fields, so the package's brand checks
// (`isRetryError`, `instanceof RetryError` via `Symbol.hasInstance`) work across bundle copies.

/** The call failed without a response to hand back (network errors, timeouts, the deadline). */
const retryError = (attempts, reason, status, cause, report) =>
  Object.assign(new Error(`request failed after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${reason}`), {
    name: "RetryError", attempts, reason, status, cause, report,
  });

const HELD = { "circuit-open": "its circuit breaker is open", cooling: "it is cooling after a rate limit", pacing: "its rate limit has no slot" };

/** Nothing was sent: no route could be tried within the deadline (`reason`: what held the soonest). */
const circuitOpenError = (retryInMs, reason, report) =>
  Object.assign(new Error(`no route can be tried within the deadline (the soonest in ${retryInMs} ms: ${HELD[reason] ?? reason})`), {
    name: "CircuitOpenError", reason, retryInMs, report,
  });

/** An error from the wasm (errors.rs `retry_error`, `circuit_open_error`): its kind and numbers
 * in `f` (the reason as an index, -1 for no status), as events come (`event`). */
export const error = (report, f, cause) =>
  f[0] === 0 ? retryError(f[1], REASONS[f[2]], opt(f[3]), cause, report) : circuitOpenError(f[1], REASONS[f[2]], report);
