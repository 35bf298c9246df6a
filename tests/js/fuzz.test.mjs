// Seeded fuzzing of what users pass in.
//
// (a) Thousands of generated option objects for createRetryFetch, retry and createRetry: valid
//     keys, typos and junk keys; values of every JS type (NaN, ±Infinity, -0, huge, fractions,
//     strings, arrays of length 0/1/10 001 and sparse ones, plain objects, URL/Map/Date/Promise,
//     class instances, a Proxy that throws on get, functions, symbols, null/undefined); nested
//     sections. Each outcome is a TypeError or RangeError whose message names an option path
//     present in the input, or a working client — which then makes one call against a loopback
//     server that answers 200, and that call must succeed. Never another error, never a wasm trap.
//     Plus the cases the generator cannot judge alone: arrays longer than 10 000 entries are
//     honoured whole or refused with a RangeError naming the option, and non-plain objects as
//     fallbacks are a TypeError naming fallbacks[i] (a URL may be taken as { url }).
// (b) Calls that fetch itself rejects (credentials in the URL, non-HTTP schemes, forbidden or
//     malformed methods, bad redirect/mode/credentials/cache/…, with variations): each rejects with
//     a TypeError at once, nothing reaches the server, and onEvent sees no retry.
//
// FUZZ_SEED=<n> replays another seed; FUZZ_CASES=<n> changes how many option objects (a) makes.
// Every failure message carries the seed and the case number.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createRetryFetch, retry, createRetry, isRetryError } from "llm-retry";
import { chatInit } from "./helpers.mjs";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_2026) >>> 0;
const CASES = Number(process.env.FUZZ_CASES ?? 2000);
const T = { timeout: 60_000 };

/** mulberry32: small, seeded, good enough to pick shapes. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = (xs) => xs[Math.floor(next() * xs.length)];
  const chance = (p) => next() < p;
  return { next, int, pick, chance };
}

// ---------------------------------------------------------------------------------------------
// Loopback servers: `ok` answers 200 to everything (and counts); `script` answers per path.
let ok;
let other;

async function startServer(handler) {
  const sockets = new Set();
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const record = { method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(record);
      const [status, body] = handler(record, seen) ?? [200, { id: "x", object: "chat.completion", choices: [] }];
      const buf = Buffer.from(JSON.stringify(body ?? {}));
      res.writeHead(status, { "content-type": "application/json", "content-length": buf.length });
      res.end(buf);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    port: server.address().port,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Per-path answers for the targeted tests: `answers[path]` is a list of statuses, last repeats. */
const answers = {};
before(async () => {
  ok = await startServer((r, seen) => {
    const list = answers[r.path.split("?")[0]];
    if (!list) return undefined;
    const n = seen.filter((q) => q.path === r.path).length;
    return [list[Math.min(n, list.length) - 1], { error: { message: "scripted" } }];
  });
  other = await startServer(() => undefined);
});
after(async () => {
  await ok?.close();
  await other?.close();
});

// ---------------------------------------------------------------------------------------------
// (a) Generated options.

/** Thrown by hostile values; the library may let it through (it is the caller's own getter). */
const TRAP = new Error("fuzz: hostile getter");
const HOSTILE = new WeakSet();
const marked = (v) => (HOSTILE.add(v), v);
const hostile = () =>
  marked(
    new Proxy(
      {},
      {
        get() {
          throw TRAP;
        },
      },
    ),
  );
const throwingGetter = (key) =>
  marked(
    Object.defineProperty({}, key, {
      enumerable: true,
      get() {
        throw TRAP;
      },
    }),
  );

/** Whether `v` holds a hostile value anywhere (walked through data properties only). */
function hasHostile(v, depth = 0) {
  if (typeof v !== "object" || v === null || depth > 4) return false;
  if (HOSTILE.has(v)) return true;
  const n = Array.isArray(v) ? Math.min(v.length, 50) : Infinity;
  for (const k of Object.keys(v).slice(0, n)) {
    const d = Object.getOwnPropertyDescriptor(v, k);
    if (d && "value" in d && hasHostile(d.value, depth + 1)) return true;
  }
  return false;
}

class Route {
  constructor() {
    this.model = "class-model";
  }
}

/** Built-in objects that are not plain objects: never a route (a URL may be taken as { url }). */
const NOT_PLAIN = [
  () => new URL("http://127.0.0.1:1/fallback"),
  () => new Map([["model", "m"]]),
  () => new Set(),
  () => new Date(0),
  () => Promise.resolve({ model: "m" }),
  () => /model/,
  () => new Error("e"),
  () => new Uint8Array(2),
  () => new ArrayBuffer(2),
  () => new Headers({ a: "b" }),
  () => new Number(5),
  () => new String("s"),
  () => new AbortController().signal,
];
const isNotPlain = (v) =>
  v instanceof URL || v instanceof Map || v instanceof Set || v instanceof Date || v instanceof Promise ||
  v instanceof RegExp || v instanceof Error || ArrayBuffer.isView(v) || v instanceof ArrayBuffer ||
  v instanceof Headers || v instanceof Number || v instanceof String || v instanceof AbortSignal;

const goodFetch = (input, init) => fetch(input, init);
// No function here returns a rejecting promise: as an onEvent that is defect 2's unhandled
// rejection, which the soak test covers (here it would end this whole test at the first case).
const FUNCTIONS = [
  () => () => {},
  () => () => {
    throw new Error("fuzz: listener threw");
  },
  () => async () => {},
  () => function named() {},
  () => Math.max,
  () => class {},
];

function junk(r, depth = 0) {
  const scalars = [
    NaN, Infinity, -Infinity, -0, 0, 0.5, -1, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, Number.MIN_VALUE,
    "", "3", "full", "none", "NaN", " 1 ", "\u0000", "😀", "http://127.0.0.1:1/x", "/relative", "a".repeat(5000),
    true, false, null, undefined, 0n, 10n, Symbol("fuzz"),
  ];
  const k = r.int(0, 9);
  if (k <= 3 || depth > 2) return r.pick(scalars);
  if (k === 4) return r.int(-10, 100_000) / r.pick([1, 1, 3, 1000]);
  if (k === 5) {
    const len = r.pick([0, 1, 2, 10, 10_001]);
    const a = new Array(len);
    const fill = r.chance(0.5) ? r.pick([503, "x", null, 200]) : undefined;
    if (len > 100) a.fill(fill ?? 503);
    else for (let i = 0; i < len; i++) if (!r.chance(0.2)) a[i] = fill ?? junk(r, depth + 1); // holes: sparse
    return a;
  }
  if (k === 6) {
    const o = r.chance(0.2) ? Object.create(null) : {};
    for (let i = r.int(0, 3); i > 0; i--) o[r.pick(["a", "model", "url", "maxMs", "0", ""])] = junk(r, depth + 1);
    return o;
  }
  if (k === 7) return r.pick(NOT_PLAIN)();
  if (k === 8) return r.pick([hostile, () => throwingGetter("model"), () => new Route(), () => Object.freeze({})])();
  return r.pick(FUNCTIONS)();
}

const plausible = {
  count: (r) => r.pick([1, 2, 3, 4, 10, 100, r.int(1, 100)]),
  ms: (r) => r.pick([0, 1, 5, 20, 100, 1000, 30_000, 86_400_000, r.int(0, 5000)]),
  // Time limits small enough to fail a call are kept out of "plausible" values (junk has them).
  limit: (r) => r.pick([2000, 5000, 60_000, 86_400_000, r.int(2000, 100_000)]),
  bool: (r) => r.chance(0.5),
  statuses: (r) => Array.from({ length: r.int(0, 5) }, () => r.int(100, 599)),
  fn: (r) => r.pick([() => {}, async () => {}, () => "value"]),
  names: (r) => Array.from({ length: r.int(0, 3) }, () => r.pick(["x-secret", "X-Org", "openai-organization", ""])),
  signal: () => new AbortController().signal,
};

/** Each section's keys with a generator for a value that is probably valid. */
const SECTIONS = {
  backoff: {
    initialMs: plausible.ms,
    maxMs: plausible.ms,
    multiplier: (r) => r.pick([1, 1.5, 2, 100, r.int(100, 10_000) / 100]),
    jitter: (r) => r.pick(["full", "equal", "decorrelated", "none"]),
  },
  budget: { maxTokens: (r) => r.pick([1, 10, 1000, 1e6, r.int(1, 500)]), tokenRatio: (r) => r.pick([0.1, 0.5, 1, 1e-3]) },
  breaker: { failureThreshold: (r) => r.int(1, 10), cooldownMs: plausible.ms },
};
const ROUTE = {
  model: (r) => r.pick(["gpt-4o-mini", "b", "", "😀"]),
  url: (r) => r.pick(["http://127.0.0.1:1/v1/chat/completions", "https://example.invalid/v1", `http://127.0.0.1:1/?q=1`]),
  headers: (r) => r.pick([{ "x-key": "v" }, [["x-key", "v"]], new Headers({ "x-key": "v" }), {}]),
  maxAttempts: plausible.count,
};

function section(r, keys) {
  const o = {};
  for (const [k, gen] of Object.entries(keys)) if (r.chance(0.5)) o[k] = gen(r);
  return o;
}

const TOP = {
  maxAttempts: plausible.count,
  backoff: (r) => section(r, SECTIONS.backoff),
  deadlineMs: plausible.limit,
  attemptTimeoutMs: plausible.limit,
  retryOn: plausible.statuses,
  maxRetryAfterMs: plausible.ms,
  idempotent: plausible.bool,
  budget: (r) => (r.chance(0.3) ? false : section(r, SECTIONS.budget)),
  breaker: (r) => (r.chance(0.3) ? false : section(r, SECTIONS.breaker)),
  fetch: (r) => r.pick([goodFetch, fetch]),
  onEvent: plausible.fn,
  onExhausted: plausible.fn,
  fallbacks: (r) => Array.from({ length: r.int(0, 3) }, () => section(r, ROUTE)),
  sensitiveHeaders: plausible.names,
  signal: plausible.signal,
};

/** A near miss of `key`: one character dropped, doubled or re-cased. */
function typo(r, key) {
  const i = r.int(0, key.length - 1);
  return r.pick([
    key.slice(0, i) + key.slice(i + 1),
    key.slice(0, i) + key[i] + key.slice(i),
    key[0].toUpperCase() + key.slice(1),
    `${key} `,
  ]);
}
const JUNK_KEYS = ["", " ", "__proto__", "constructor", "toString", "0", "😀", "max_attempts", "timeout", "retries"];

/** Sets `key` as an own, enumerable property (so "__proto__" is a key, not the prototype). */
const set = (o, key, v) => Object.defineProperty(o, key, { value: v, enumerable: true, writable: true, configurable: true });

/** An object of `keys` (name → generator), with some values, keys and nested parts spoiled. */
function generate(r, keys, spoil, depth = 0) {
  const o = {};
  for (const [k, gen] of Object.entries(keys)) {
    // (signal only rarely: it is an error for createRetryFetch, which would hide the rest)
    if (!r.chance(keys !== TOP ? 0.5 : k === "signal" ? 0.05 : 0.25)) continue;
    let v = gen(r);
    if (r.chance(spoil)) v = junk(r);
    else if (depth === 0 && SECTIONS[k] && v && r.chance(spoil)) v = generate(r, SECTIONS[k], spoil, 1);
    else if (k === "fallbacks" && r.chance(spoil)) {
      v = Array.from({ length: r.int(1, 3) }, () => (r.chance(0.5) ? generate(r, ROUTE, spoil, 1) : junk(r, 1)));
    }
    set(o, k, v);
  }
  if (r.chance(spoil / 2)) set(o, typo(r, r.pick(Object.keys(keys))), junk(r, 1));
  if (r.chance(spoil / 3)) set(o, r.pick(JUNK_KEYS), junk(r, 1));
  if (depth === 0 && r.chance(spoil / 4)) return r.chance(0.5) ? hostile() : throwingGetter(r.pick(Object.keys(TOP)));
  return o;
}

function options(r) {
  const k = r.next();
  if (k < 0.05) return junk(r); // not even an object (or a strange one)
  if (k < 0.1) return undefined;
  return generate(r, TOP, k < 0.4 ? 0 : r.pick([0.1, 0.3, 0.6]));
}

/** Every option path present in `o` as the library spells them: `a`, `a.b`, `a[0]`, `a[0].b`. */
function paths(o) {
  const out = new Set(["options"]);
  const keysOf = (v) => {
    try {
      return typeof v === "object" && v !== null ? Object.keys(v) : [];
    } catch {
      return [];
    }
  };
  const get = (v, k) => {
    try {
      return v[k];
    } catch {
      return undefined;
    }
  };
  const walk = (v, prefix, depth) => {
    if (depth > 3) return;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        out.add(`${prefix}[${i}]`);
        if (i < 50) walk(get(v, i), `${prefix}[${i}]`, depth + 1);
      }
      return;
    }
    for (const k of keysOf(v)) {
      const p = prefix ? `${prefix}.${k}` : k;
      out.add(p);
      walk(get(v, k), p, depth + 1);
    }
  };
  walk(o, "", 0);
  return out;
}

/** Does `message` start by naming one of `present` (after "unknown option ")? */
function namesPresent(message, present) {
  const subjects = [message, message.replace(/^unknown option /, ""), message.replace(/^[\w$-]+: /, "")];
  return subjects.some((s) =>
    [...present].some((p) => s.startsWith(p) && (s.length === p.length || /[\s(:,]/.test(s[p.length]))),
  );
}

/** A short, type-tagged picture of a value for failure messages. */
function show(v, depth = 0) {
  try {
    if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…(${v.length})` : v);
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "symbol" || typeof v === "function") return typeof v;
    if (typeof v !== "object" || v === null) return Object.is(v, -0) ? "-0" : String(v);
    if (HOSTILE.has(v)) return "<hostile>";
    if (depth > 2) return "…";
    if (Array.isArray(v)) {
      const items = Array.from({ length: Math.min(v.length, 3) }, (_, i) => (i in v ? show(v[i], depth + 1) : "<hole>"));
      return `[${items.join(", ")}${v.length > 3 ? `, …(${v.length})` : ""}]`;
    }
    const proto = Object.getPrototypeOf(v);
    const name = proto === null ? "null-proto " : proto === Object.prototype ? "" : `${proto?.constructor?.name ?? "?"} `;
    return `${name}{${Object.keys(v).map((k) => `${JSON.stringify(k)}: ${show(v[k], depth + 1)}`).join(", ")}}`;
  } catch {
    return "<hostile>";
  }
}

const isTrap = (e) => e instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError/.test(String(e?.message));

/**
 * Whether a call made with a client that accepted `o` has reason to fail: a transport other than
 * fetch, or a deadline/attempt timeout short enough to cut a loopback call short.
 */
function callMayFail(o) {
  const get = (k) => {
    try {
      return o?.[k];
    } catch {
      return undefined;
    }
  };
  const f = get("fetch");
  const small = (v) => typeof v === "number" && v < 2000;
  return (f !== undefined && f !== fetch && f !== goodFetch) || small(get("deadlineMs")) || small(get("attemptTimeoutMs"));
}

/** With a watchdog: a call that takes longer than `ms` ends as "slow" (and is aborted through
 * `controller`, so nothing of it outlives the test). */
async function timed(p, ms, controller) {
  let id;
  const slow = new Promise((resolve) => (id = setTimeout(() => resolve({ slow: true }), ms)));
  try {
    const out = await Promise.race([p.then((value) => ({ value }), (error) => ({ error })), slow]);
    if (out.slow) controller?.abort(new Error("fuzz: watchdog"));
    return out;
  } finally {
    clearTimeout(id);
  }
}

test("(a) generated options: a TypeError/RangeError naming a present option, or a working client", T, async (t) => {
  const r = prng(SEED);
  const failures = [];
  const tally = { accepted: 0, TypeError: 0, RangeError: 0, trap: 0, calls: 0, slow: 0 };
  const fail = (i, api, o, what) => failures.push(`case ${i} ${api}(${show(o)}): ${what}`);
  for (let i = 0; i < CASES && failures.length < 20; i++) {
    const o = options(r);
    const present = paths(o);
    const hostileInside = hasHostile(o);
    const fallbacks = (() => {
      try {
        return Array.isArray(o?.fallbacks) ? o.fallbacks : [];
      } catch {
        return [];
      }
    })();
    const notPlain = fallbacks.findIndex((f) => isNotPlain(f) && !(f instanceof URL));

    for (const api of ["createRetryFetch", "createRetry", "retry"]) {
      let client;
      let error;
      let result;
      try {
        if (api === "createRetryFetch") client = createRetryFetch(o);
        else if (api === "createRetry") client = createRetry(o);
        else {
          tally.calls++;
          result = await timed(retry(() => "fuzz-ok", o), callMayFail(o) ? 500 : 5000);
          error = result.error;
        }
      } catch (e) {
        error = e;
      }
      const rejectedOptions =
        error !== undefined && (error instanceof TypeError || error instanceof RangeError) && !isRetryError(error);
      if (error !== undefined && isTrap(error)) {
        tally.trap++;
        fail(i, api, o, `wasm trap: ${error}`);
        break;
      }
      if (error !== undefined && (rejectedOptions || error === TRAP)) {
        if (error === TRAP) {
          if (!hostileInside) fail(i, api, o, "the hostile getter's error, but the input has none");
          continue;
        }
        tally[error.constructor.name]++;
        if (!namesPresent(error.message, present)) fail(i, api, o, `${error.name} "${error.message}" names no option present in the input`);
        continue;
      }
      // Accepted.
      if (notPlain >= 0) fail(i, api, o, `fallbacks[${notPlain}] (${show(fallbacks[notPlain])}) accepted as a route`);
      if (api === "retry") {
        if (result.slow) fail(i, api, o, "retry(() => value) did not settle in time");
        else if (error !== undefined && !callMayFail(o)) fail(i, api, o, `retry(() => value) rejected: ${error?.name}: ${error?.message}`);
        else if (error === undefined && result.value !== "fuzz-ok") fail(i, api, o, `resolved to ${show(result.value)}`);
        else tally.accepted++;
        continue;
      }
      tally.accepted++;
      tally.calls++;
      const controller = new AbortController();
      const { signal } = controller;
      const call =
        api === "createRetryFetch"
          ? client(`${ok.url}/v1/chat/completions`, chatInit({ signal })).then(async (res) => (await res.arrayBuffer(), res.status))
          : client(() => "fuzz-ok", { signal });
      // A call that may fail may also take long (retries of an attempt timeout): not waited for.
      const out = await timed(call, callMayFail(o) ? 500 : 5000, controller);
      if (out.slow) tally.slow++;
      const want = api === "createRetryFetch" ? 200 : "fuzz-ok";
      if (out.slow) {
        if (!callMayFail(o)) fail(i, api, o, "the call did not settle within 5 s");
      } else if (out.error !== undefined) {
        if (isTrap(out.error)) fail(i, api, o, `wasm trap in the call: ${out.error}`);
        else if (!callMayFail(o)) fail(i, api, o, `the call rejected: ${out.error?.name}: ${out.error?.message}`);
      } else if (out.value !== want && !callMayFail(o)) {
        fail(i, api, o, `the call gave ${show(out.value)}`);
      }
    }
  }
  t.diagnostic(`seed ${SEED}, ${CASES} option objects: ${JSON.stringify(tally)}`);
  assert.deepEqual(failures, [], `seed ${SEED}: ${failures.length}${failures.length >= 20 ? "+" : ""} failures\n${failures.join("\n")}`);
  // The generator really produced both kinds of outcome.
  assert.ok(tally.accepted > CASES / 2 && tally.TypeError > CASES / 5 && tally.RangeError > CASES / 20, JSON.stringify(tally));
});

/** `{ client }` when `make()` accepts the options, `{}` when it throws the RangeError naming `option`. */
function acceptedOrRefused(make, option) {
  try {
    return { client: make() };
  } catch (e) {
    assert.ok(e instanceof RangeError, `${option}: ${e?.name}: ${e?.message}`);
    assert.match(e.message, new RegExp(`^${option}\\b`), `${option}: the RangeError names it`);
    return {};
  }
}

for (const n of [10_000, 10_001]) {
  test(`(a) retryOn of ${n} entries: the last one honoured${n > 10_000 ? ", or a RangeError naming retryOn" : ""}`, T, async () => {
    // Entry n − 1 (418) must make a 418 retried.
    const path = `/fuzz/retry-on-${n}`;
    answers[path] = [418, 200];
    const retryOn = [...new Array(n - 1).fill(503), 418];
    const { client } = acceptedOrRefused(() => createRetryFetch({ retryOn, backoff: { initialMs: 1, maxMs: 1 }, budget: false }), "retryOn");
    if (n === 10_000) assert.ok(client, "an array of 10 000 is accepted");
    if (!client) return;
    const res = await client(`${ok.url}${path}`, chatInit());
    assert.equal(res.status, 200, `retryOn of ${n}: its last entry (418) was ignored — the array was cut`);
  });
}

test("(a) sensitiveHeaders of 10 001 entries: the last one honoured, or a RangeError naming sensitiveHeaders", T, async () => {
  // Entry 10 000 must be dropped on the way to another origin.
  answers["/fuzz/sensitive"] = [503];
  const sensitiveHeaders = [...Array.from({ length: 10_000 }, (_, i) => `x-filler-${i}`), "x-secret"];
  const { client } = acceptedOrRefused(
    () => createRetryFetch({ sensitiveHeaders, maxAttempts: 1, budget: false, fallbacks: [{ url: `${other.url}/fuzz/fallback` }] }),
    "sensitiveHeaders",
  );
  if (!client) return;
  const before = other.seen.length;
  const res = await client(`${ok.url}/fuzz/sensitive`, chatInit({ headers: { "x-secret": "s3cret", "x-filler-1": "f" } }));
  assert.equal(res.status, 200);
  const sent = other.seen.slice(before);
  assert.equal(sent.length, 1, "the fallback on the other origin was tried");
  assert.equal(sent[0].headers["x-filler-1"], undefined, "sensitiveHeaders[1] dropped");
  assert.equal(sent[0].headers["x-secret"], undefined, "sensitiveHeaders[10000] (x-secret) sent to another origin: the array was cut");
});

test("(a) fallbacks of 10 001 routes: the last one tried, or a RangeError naming fallbacks", T, async () => {
  // Route 10 001 must be tried once the 10 000 before it have failed.
  const fallbacks = Array.from({ length: 10_001 }, () => ({ maxAttempts: 1 }));
  const opts = { fallbacks, maxAttempts: 1, budget: false, breaker: false, deadlineMs: 60_000 };
  let last = -1;
  const fn = ({ route }) => {
    last = route.index;
    if (route.index === 10_001) return "last";
    throw { status: 503 };
  };
  const { client } = acceptedOrRefused(() => createRetry(opts), "fallbacks");
  if (client) {
    const out = await client(fn).then((v) => v, (e) => e);
    assert.equal(out, "last", `createRetry with 10 001 fallbacks: the last route tried was ${last} — the array was cut`);
  }
  last = -1;
  const viaRetry = await retry(fn, opts).then((v) => v, (e) => e);
  if (viaRetry instanceof RangeError) assert.match(viaRetry.message, /^fallbacks\b/);
  else assert.equal(viaRetry, "last", `retry(fn) with 10 001 fallbacks: the last route tried was ${last} — the array was cut`);
  // And through createRetryFetch: accepted whole, or refused.
  acceptedOrRefused(() => createRetryFetch({ fallbacks }), "fallbacks");
});

test("(a) non-plain objects as fallbacks: a TypeError naming fallbacks[i], or a URL taken as { url }", T, async () => {
  const failures = [];
  for (const make of NOT_PLAIN) {
    for (const at of [0, 1]) {
      const v = make();
      const fallbacks = at === 0 ? [v] : [{ model: "m" }, v];
      const what = `fallbacks[${at}] = ${show(v)}`;
      for (const api of ["createRetryFetch", "createRetry", "retry"]) {
        let error;
        try {
          if (api === "createRetryFetch") createRetryFetch({ fallbacks });
          else if (api === "createRetry") createRetry({ fallbacks });
          else {
            // Route 0 fails; what route `at + 1` is given tells how the value was read.
            const got = await retry(
              ({ route }) => {
                if (route.index <= at) throw { status: 503 };
                return route;
              },
              { fallbacks, maxAttempts: 1, budget: false },
            );
            if (v instanceof URL && got.url !== v.href) failures.push(`${api}: ${what} accepted, but the route's url is ${got.url}`);
          }
        } catch (e) {
          error = e;
        }
        if (error === undefined) {
          if (!(v instanceof URL)) failures.push(`${api}: ${what} accepted as a route`);
        } else if (!(error instanceof TypeError) || !error.message.startsWith(`fallbacks[${at}]`)) {
          failures.push(`${api}: ${what}: ${error?.name}: ${error?.message}`);
        }
      }
    }
  }
  assert.deepEqual(failures, []);
});

// ---------------------------------------------------------------------------------------------
// (b) What fetch itself rejects.

const ALWAYS_REJECTED_METHODS = ["CONNECT", "connect", "Trace", "TRACE", "track", "", "GE T", "G\u00e9T", "GET\n", "a,b", "(GET)", "GET/"];
const INIT_JUNK = [
  { redirect: "bogus" }, { redirect: "FOLLOW" }, { redirect: "" },
  { mode: "bogus" }, { mode: "navigate" }, { mode: "websocket" },
  { credentials: "bogus" }, { credentials: "Include" },
  { cache: "bogus" }, { cache: "only-if-cached" },
  { referrerPolicy: "bogus" }, { referrer: "http://[bad" }, { window: {} }, { duplex: "bogus" },
];

/** Input forms for a URL: the string, a URL object, or a Request when one can be made. */
function inputs(r, href) {
  const out = [href];
  try {
    out.push(new URL(href));
  } catch {}
  try {
    if (r.chance(0.5)) out.push(new Request(href));
  } catch {}
  return out;
}

/** What `new Request(input, init)` rejects, and non-http(s) schemes: the caller's own error. */
function fetchWouldReject(input, init) {
  try {
    const req = new Request(input, init);
    return !/^https?:$/.test(new URL(req.url).protocol);
  } catch {
    return true;
  }
}

function badCalls(r) {
  const port = ok.port;
  const path = "/v1/chat/completions";
  const cases = [];
  const variants = (init) => [
    init,
    { ...init, method: init.method ?? "POST", body: JSON.stringify({ model: "m", messages: [] }), headers: { "content-type": "application/json" } },
    { ...init, method: init.method ?? "POST", body: new TextEncoder().encode("{}") }, // the slow path: read through new Request
    { ...init, headers: { authorization: "Bearer k" }, signal: new AbortController().signal },
  ];
  for (const cred of ["user:pw@", "user@", ":pw@", "u%20x:p%40@"]) {
    for (const input of inputs(r, `http://${cred}127.0.0.1:${port}${path}`)) cases.push([input, r.pick(variants({}))]);
  }
  for (const scheme of ["ftp:", "ws:", "wss:", "file:", "gopher:", "foo:", "mailto:", "javascript:"]) {
    const href = scheme === "mailto:" || scheme === "javascript:" ? `${scheme}x@127.0.0.1` : `${scheme}//127.0.0.1:${port}${path}`;
    for (const input of inputs(r, href)) cases.push([input, r.pick(variants({}))]);
  }
  for (const method of ALWAYS_REJECTED_METHODS) {
    for (const input of [`http://127.0.0.1:${port}${path}`, new URL(`http://127.0.0.1:${port}${path}?m=1`)]) {
      cases.push([input, r.pick(variants({ method }))]);
    }
  }
  for (const init of INIT_JUNK) {
    for (const v of variants(init)) cases.push([`http://127.0.0.1:${port}${path}`, v]);
  }
  return cases.filter(([input, init]) => fetchWouldReject(input, init));
}

test("(b) what fetch rejects: a TypeError at once, nothing sent, no retry event", T, async () => {
  const r = prng(SEED ^ 0xb);
  const cases = badCalls(r);
  assert.ok(cases.length > 80, `${cases.length} cases`);
  const before = ok.seen.length;
  const failures = [];
  const failed = new Set();
  // In batches, each call on its own client (so one call's breaker or budget cannot shape
  // another's outcome), each timed from its own start. The deadline only bounds a failing call.
  for (let b = 0; b < cases.length; b += 20) {
    await Promise.all(
      cases.slice(b, b + 20).map(async ([input, init], j) => {
        const events = [];
        const retryFetch = createRetryFetch({
          backoff: { initialMs: 100, maxMs: 200 },
          deadlineMs: 1500,
          breaker: false,
          budget: false,
          onEvent: (e) => events.push(e.type),
        });
        const started = performance.now();
        const out = await retryFetch(input, init).then((res) => ({ res }), (error) => ({ error }));
        const ms = performance.now() - started;
        const what = `case ${b + j}: retryFetch(${input instanceof Request ? `Request ${input.url}` : show(String(input))}, ${show(init)})`;
        const n = failures.length;
        if (!(out.error instanceof TypeError) || isRetryError(out.error)) {
          failures.push(`${what}: ${out.res ? `resolved ${out.res.status}` : `${out.error?.name}: ${out.error?.message}`} after ${ms.toFixed(0)} ms`);
        } else if (ms >= 200) failures.push(`${what}: the TypeError came after ${ms.toFixed(0)} ms`);
        if (events.includes("retry")) failures.push(`${what}: onEvent saw ${events.filter((e) => e === "retry").length} retry events`);
        if (failures.length > n) failed.add(b + j);
      }),
    );
  }
  assert.equal(ok.seen.length - before, 0, "requests reached the server");
  assert.deepEqual(failures, [], `seed ${SEED}: ${failed.size} of ${cases.length} cases failed`);
  // The clients still work.
  const res = await createRetryFetch()(`${ok.url}/v1/chat/completions`, chatInit());
  assert.equal(res.status, 200);
});

// ---------------------------------------------------------------------------------------------
// (c) One call's own options: `init.retry` of a retryFetch call, a createRetry call's second
// argument. A TypeError/RangeError naming a present option (as `init.retry.…` / `options.…`),
// nothing sent; or a working call; never a trap, and the client keeps working.

const PER_CALL = {
  maxAttempts: plausible.count,
  deadlineMs: plausible.limit,
  attemptTimeoutMs: plausible.limit,
  firstTokenTimeoutMs: plausible.limit,
  idleTimeoutMs: plausible.limit,
  idempotent: plausible.bool,
  fallbacks: (r) => (r.chance(0.3) ? false : Array.from({ length: r.int(0, 3) }, () => section(r, ROUTE))),
};

function perCall(r) {
  const k = r.next();
  if (k < 0.05) return junk(r);
  if (k < 0.1) return r.pick([undefined, false, {}]);
  return generate(r, PER_CALL, k < 0.4 ? 0 : r.pick([0.1, 0.3, 0.6]));
}

/** `paths(o)` as a call's option names: `init.retry`, `init.retry.maxAttempts`, `…fallbacks[0].url`. */
const pathsAs = (o, root) => new Set([...paths(o)].map((p) => (p === "options" ? root : p.startsWith("[") ? root + p : `${root}.${p}`)));

test("(c) generated per-call options: a TypeError/RangeError naming one, or a working call", T, async () => {
  const r = prng(SEED ^ 0xc);
  const retryFetch = createRetryFetch({ backoff: { initialMs: 10, maxMs: 20 } });
  const run = createRetry({ backoff: { initialMs: 10, maxMs: 20 } });
  const failures = [];
  const tally = { accepted: 0, TypeError: 0, RangeError: 0, trap: 0 };
  const before = ok.seen.length;
  let sent = 0;
  for (let i = 0; i < CASES / 2 && failures.length < 20; i++) {
    const o = perCall(r);
    const hostileInside = hasHostile(o);
    for (const api of ["retryFetch", "createRetry"]) {
      const present = pathsAs(o, api === "retryFetch" ? "init.retry" : "options");
      const controller = new AbortController();
      const call =
        api === "retryFetch"
          ? retryFetch(`${ok.url}/v1/chat/completions`, { ...chatInit({ signal: controller.signal }), retry: o }).then(async (res) => (await res.arrayBuffer(), res.status))
          : run(() => "fuzz-ok", o);
      const out = await timed(call, callMayFail(o) ? 500 : 5000, controller);
      const what = `case ${i} ${api}(${show(o)})`;
      if (out.slow) {
        if (!callMayFail(o)) failures.push(`${what}: did not settle within 5 s`);
        continue;
      }
      const e = out.error;
      if (e === undefined) {
        const want = api === "retryFetch" ? 200 : "fuzz-ok";
        if (out.value !== want) failures.push(`${what}: gave ${show(out.value)}`);
        else tally.accepted++;
        if (api === "retryFetch") sent++;
        continue;
      }
      if (isTrap(e)) {
        tally.trap++;
        failures.push(`${what}: wasm trap: ${e}`);
      } else if (e === TRAP) {
        if (!hostileInside) failures.push(`${what}: the hostile getter's error, but the input has none`);
      } else if ((e instanceof TypeError || e instanceof RangeError) && !isRetryError(e)) {
        tally[e.constructor.name]++;
        if (!namesPresent(e.message, present)) failures.push(`${what}: ${e.name} "${e.message}" names no option present in the input`);
      } else if (!callMayFail(o)) {
        failures.push(`${what}: rejected: ${e?.name}: ${e?.message}`);
      } else if (api === "retryFetch") sent++;
    }
  }
  assert.deepEqual(failures, [], `seed ${SEED}: ${failures.length}${failures.length >= 20 ? "+" : ""} failures\n${failures.join("\n")}`);
  assert.ok(ok.seen.length - before >= sent, "each accepted retryFetch call reached the server");
  assert.ok(tally.accepted > CASES / 8 && tally.TypeError > CASES / 40 && tally.RangeError > 0, JSON.stringify(tally));
  const res = await retryFetch(`${ok.url}/v1/chat/completions`, chatInit());
  assert.equal(res.status, 200, "the client still works");
});

// (d) Generated JSON bodies: the model a call's events name is the body's top-level "model" as
//     JSON.parse reads it (a string with no escape, within the scan's 300 characters), whatever
//     keys come before or after it and whatever nests a "model" of its own; else none.
test("(d) generated JSON bodies: the route's model is JSON.parse's top-level model, or none", T, async () => {
  const { int, pick, chance } = prng(SEED ^ 0xd0d1e5);
  const texts = ["model", "gpt-4o", "x", 'a"b', "\\", '\\"', "mo\\del", '"model"', "", 'model":"decoy', "é", "}", "{", "[", "]", ",", ":"];
  const value = (d) => {
    const r = int(0, d > 3 ? 2 : 5);
    return r === 0 ? pick(texts) : r === 1 ? int(0, 99) : r === 2 ? null : r === 3 ? Array.from({ length: int(0, 2) }, () => value(d + 1)) : object(d + 1);
  };
  const object = (d) => {
    const o = {};
    for (let n = int(0, 3); n > 0; n--) o[chance(0.3) ? "model" : pick(texts)] = value(d);
    return o;
  };
  const events = [];
  const f = createRetryFetch({ fetch: async () => new Response("{}"), onEvent: (e) => events.push(e) });
  const failures = [];
  for (let n = 0; n < 2000 && failures.length < 10; n++) {
    const o = object(0);
    if (chance(0.5)) o.model = pick(texts);
    const body = JSON.stringify(o, null, chance(0.25) ? 2 : undefined);
    const parsed = JSON.parse(body).model;
    const want = typeof parsed === "string" && !JSON.stringify(parsed).slice(1, -1).includes("\\") ? parsed : undefined;
    events.length = 0;
    await f("http://127.0.0.1:9/v1/chat/completions", { method: "POST", body });
    const got = events.find((e) => e.type === "attempt")?.model;
    if (got !== want) failures.push(`seed ${SEED} case ${n}: ${body} → ${got}, JSON.parse's ${want}`);
  }
  assert.deepEqual(failures, []);
});
