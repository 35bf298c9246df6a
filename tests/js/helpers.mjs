// Small shared helpers for the Node suites (not part of the mock provider's public surface).
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { startMockProvider } from "./mock-provider.mjs";

/** Backoff small enough that no test sleeps for real minutes. */
export const FAST = Object.freeze({ initialMs: 20, maxMs: 200 });

/** Per-test timeout: a hung library call fails its test instead of the whole run. */
export const T = { timeout: 15_000 };

/** Starts a mock provider that is closed when test `t` ends. */
export async function mockFor(t, opts) {
  const mock = await startMockProvider(opts);
  t.after(() => mock.close());
  return mock;
}

/** Gaps in ms between consecutive recorded arrivals. */
export function gaps(requests) {
  const out = [];
  for (let i = 1; i < requests.length; i++) out.push(requests[i].t - requests[i - 1].t);
  return out;
}

export function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Awaits `p` and reports how it settled and how long it took from now. Given a function, calls
 * it and times from before the call: a bound a test asserts from below (a deadline, a wait) is
 * then measured from where the library measures it, not from after the call returned (which a
 * busy machine can put milliseconds later). */
export async function settle(p) {
  const t0 = performance.now();
  try {
    const value = await (typeof p === "function" ? p() : p);
    return { ok: true, value, ms: performance.now() - t0, at: performance.now() };
  } catch (error) {
    return { ok: false, error, ms: performance.now() - t0, at: performance.now() };
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves `p`, or rejects after `ms` with a message naming `what` (so a hang fails fast). */
export function within(p, ms, what) {
  let id;
  return Promise.race([
    p.finally(() => clearTimeout(id)),
    new Promise((_, reject) => {
      id = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
    }),
  ]);
}

export const CHAT_BODY = JSON.stringify({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say ok" }],
});

/** A fetch init for a chat completion POST; `headers` are merged over content-type. */
export function chatInit({ headers = {}, ...rest } = {}) {
  return { method: "POST", body: CHAT_BODY, ...rest, headers: { "content-type": "application/json", ...headers } };
}

/** `clients` (retry fetches standing for instances) against one provider limited to 50 requests
 * a second (burst 10): each makes one call, in turn (so each has learned the limit from its
 * headers), then 160 calls go at 100 a second, dealt round-robin. What the provider answered
 * after the first calls, and how many calls were served. */
export async function limitedFleet(t, clients) {
  const mock = await mockFor(t, { limit: { rate: 50, burst: 10 } });
  const url = mock.url + "/v1/chat/completions";
  for (const f of clients) {
    const res = await f(url, chatInit());
    if (res.status !== 200) throw new Error(`a first call got ${res.status}`);
  }
  await sleep(250); // the bucket refills
  const warm = mock.requests.length;
  const calls = [];
  for (let i = 0; i < 160; i++) {
    calls.push(clients[i % clients.length](url, chatInit()).then((r) => r.status, (e) => e.name));
    if (i % 4 === 3) await sleep(40);
  }
  const statuses = await Promise.all(calls);
  const answered = mock.requests.slice(warm).map((r) => r.step.status);
  return { served: statuses.filter((s) => s === 200).length, requests: answered.length, rejected: answered.filter((s) => s === 429).length };
}
