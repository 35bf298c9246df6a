// The public API over the wasm client. The runtime entry files (node.js, browser.js, deno.js,
// workerd.js, edge.js, esbuild.js) load the wasm first, then re-export this module.
import { RetryClient, retryReport as reportOf } from "./llm_retry.js";
import { bucketsPace, merged, recordStale, sweeper } from "./health-pace.js";

/** A fetch with retries, backoff, wait hints, breakers and fallback. See index.d.ts. */
export function createRetryFetch(options) {
  const client = new RetryClient(options, false);
  const retryFetch = (input, init) => client.fetch(input, init, Date.now());
  return withState(retryFetch, client);
}

/** Links a client's shared health (`options.health`) to it: what the store's reads tell is
 * adopted by its breakers; `flushHealth()` resolves when what they told is written. */
function withHealth(f, client) {
  const link = client.healthLink();
  if (link) link.sink = (flat) => client.adoptHealth(flat);
  f.flushHealth = () => Promise.resolve(link?.flush());
  f.unlink = () => link && (link.sink = undefined);
  return f;
}

/** A fetch init carrying one call's own options (`init.retry`), e.g. for an SDK's per-request
 * `fetchOptions`. */
export const retryInit = (options) => ({ retry: options });

/** Calls `fn({ attempt, signal, route })` until it succeeds or the policy gives up. */
export function retry(fn, options) {
  let client;
  try {
    client = new RetryClient(options, true);
  } catch (e) {
    return Promise.reject(e);
  }
  const f = withHealth({}, client);
  return client.run(fn, undefined).finally(() => {
    f.unlink();
    client.free();
  });
}

/** A reusable `retry`, whose breakers and budget are shared by every call. */
export function createRetry(options) {
  const client = new RetryClient(options, true);
  const run = (fn, opts) => client.run(fn, opts);
  return withState(run, client);
}

/** A store in this process's memory: clients given the same one share health (a test, or one
 * server's several clients). Merges as every store must: per field, the larger value; paces
 * busy routes from one bucket each; forgets records and buckets gone stale (health-pace.js). */
export function memoryHealthStore() {
  const map = new Map();
  const sweep = sweeper(map, recordStale);
  const pace = bucketsPace();
  return {
    read: (keys) => Object.fromEntries(keys.filter((k) => map.has(k)).map((k) => [k, { ...map.get(k) }])),
    write(records) {
      for (const [k, r] of Object.entries(records)) map.set(k, merged(map.get(k), r));
      sweep(Date.now());
    },
    pace: (asks) => pace(asks, Date.now()),
  };
}

const STATES = ["closed", "open", "half-open"];
/** A saved breaker's number: absent is 0; anything but a number ≥ 0 is a TypeError naming it. */
const count = (v, key, name) => {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !(v >= 0)) {
    throw new TypeError(`restoreState: breakers["${key}"].${name} must be a number ≥ 0 (got ${typeof v === "number" ? v : typeof v})`);
  }
  return v;
};

/** Adds `exportState()`/`restoreState(state)`: the breakers as JSON-safe data, e.g. for Workers KV
 * (the wasm hands them over flat: key, state, failures, openUntil, cooledUntil per breaker). */
function withState(f, client) {
  withHealth(f, client);
  f.exportState = () => {
    const flat = client.exportState();
    const breakers = {};
    for (let i = 0; i < flat.length; i += 5) {
      breakers[flat[i]] = { state: flat[i + 1], failures: flat[i + 2], openUntil: flat[i + 3], cooledUntil: flat[i + 4] };
    }
    return { version: 1, breakers };
  };
  f.restoreState = (state) => {
    if (typeof state !== "object" || state === null) throw new TypeError("restoreState: state must be an object");
    const { breakers } = state;
    if (typeof breakers !== "object" || breakers === null) throw new TypeError("restoreState: state.breakers must be an object");
    // A state of another version (a later release's) is not read as this one's.
    if (state.version !== undefined && state.version !== 1) throw new TypeError("restoreState: state.version must be 1");
    // Checked whole before any of it is applied.
    const flat = Object.entries(breakers).flatMap(([key, b]) => {
      if (!STATES.includes(b?.state)) {
        throw new TypeError(`restoreState: breakers["${key}"].state must be "closed", "open" or "half-open"`);
      }
      return [key, b.state, count(b.failures, key, "failures"), count(b.openUntil, key, "openUntil"), count(b.cooledUntil, key, "cooledUntil")];
    });
    client.restoreState(flat);
  };
  return f;
}

/** The errors an SDK wraps ours in, and ours: `e`, then its `cause` (OpenAI's and Anthropic's
 * APIConnectionError, the AI SDK's AI_APICallError) or `lastError` (the AI SDK's AI_RetryError),
 * a few levels deep. */
function* chain(e) {
  const seen = new Set();
  for (let x = e, i = 0; i < 8 && typeof x === "object" && x !== null && !seen.has(x); i++) {
    seen.add(x);
    yield x;
    let next;
    try {
      next = x.cause ?? x.lastError;
    } catch {}
    x = next;
  }
}

/** How a call went — attempts, waits, the route that served it — for the Response a retryFetch
 * returned, or the value or error a call ended with, also when an SDK wrapped that error (found
 * along its `cause`). */
export function retryReport(value) {
  for (const x of chain(value)) {
    const r = reportOf(x);
    if (r !== undefined) return r;
  }
  return undefined;
}

// Brand checks rather than instanceof, so they hold across copies of the package in one bundle.
const isError = (e, name, field) => e instanceof Error && e.name === name && typeof e[field] === "number";
const ownRetryError = (e) => isError(e, "RetryError", "attempts");
const ownCircuitOpenError = (e) => isError(e, "CircuitOpenError", "retryInMs");
const find = (e, test) => {
  for (const x of chain(e)) if (test(x)) return x;
  return undefined;
};

/** Our RetryError or CircuitOpenError, `e` itself or what an SDK wrapped (along `cause`). */
export const retryErrorOf = (e) => find(e, (x) => ownRetryError(x) || ownCircuitOpenError(x));
export const isRetryError = (e) => find(e, ownRetryError) !== undefined;
export const isCircuitOpenError = (e) => find(e, ownCircuitOpenError) !== undefined;

// The library throws plain Errors with a stable `name`; these classes make `instanceof` work
// across bundle copies by checking that name.
export class RetryError extends Error {
  static [Symbol.hasInstance](e) {
    return ownRetryError(e);
  }
}

export class CircuitOpenError extends Error {
  static [Symbol.hasInstance](e) {
    return ownCircuitOpenError(e);
  }
}
