// What users get: events (`onEvent`), reports (`retryReport`, `onExhausted`) and errors. They
// carry no header, body or full URL (a breaker key names a route's origin and model only).

/** Leaves out fields that are undefined. */
export const clean = (o) => {
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
export const noteStreamError = (res, streamError) => {
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
