// Shared health: clients (standing for Worker isolates or servers) that share a health store see
// a route another found down, or asking for a pause, and skip it without a request; a store that
// fails or hangs delays no call past health.firstReadMs.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { createRetryFetch, memoryHealthStore, retryReport } from "llm-retry";
import { T, mockFor, settle, sleep, chatInit, limitedFleet } from "./helpers.mjs";

const chat = "/v1/chat/completions";
const breaker = { failureThreshold: 2, cooldownMs: 5_000, maxCooldownMs: 5_000 };

/** Two mocks: a primary answering `script`, a healthy fallback. */
async function providers(t, script) {
  const primary = await mockFor(t, { script });
  const backup = await mockFor(t, { script: [{ status: 200 }] });
  const fallbacks = [{ url: backup.url + chat, model: "backup" }];
  return { primary, backup, fallbacks };
}

describe("health shared through a store", () => {
  test("an instance skips a route another found down, without a request; the probe's success reopens it for both", T, async (t) => {
    const { primary, backup, fallbacks } = await providers(t, [{ status: 503 }]);
    const store = memoryHealthStore();
    const health = { store, refreshMs: 0 };
    const a = createRetryFetch({ maxAttempts: 1, breaker, fallbacks, health });
    const b = createRetryFetch({ maxAttempts: 1, breaker, fallbacks, health });
    for (let i = 0; i < 2; i++) assert.equal((await a(primary.url + chat, chatInit())).status, 200);
    assert.equal(primary.requests.length, 2, "a met the outage: two 503s, then its breaker opened");
    await a.flushHealth();
    const [key, record] = Object.entries(await store.read([...Object.keys(a.exportState().breakers)]))[0];
    assert.match(key, /^http:\/\/127\.0\.0\.1:\d+ gpt-4o-mini$/);
    assert.ok(record.openedAt > 0 && record.openUntil >= record.openedAt + 5_000, JSON.stringify(record));

    const res = await b(primary.url + chat, chatInit());
    assert.equal(res.status, 200);
    assert.equal(primary.requests.length, 2, "b sent nothing to the route a found down");
    assert.deepEqual(retryReport(res).skipped, [0]);
    assert.equal(retryReport(res).model, "backup");
    assert.equal(backup.requests.length, 3);

    // The primary recovers; a's probe (past its cooldown, forced here by restoring its state
    // with the opening run out) succeeds and tells; b's next read adopts the closing.
    primary.setScript([{ status: 200 }]);
    a.restoreState({ version: 1, breakers: { [key]: { state: "open", failures: 2, openUntil: 1, cooledUntil: 0 } } });
    assert.equal(retryReport(await a(primary.url + chat, chatInit())).model, "gpt-4o-mini");
    await a.flushHealth();
    assert.ok((await store.read([key]))[key].closedAt > record.openedAt, "a told the closing");
    await b(primary.url + chat, chatInit()); // starts b's read in the background
    await sleep(20);
    const before = primary.requests.length;
    const again = await b(primary.url + chat, chatInit());
    assert.equal(retryReport(again).model, "gpt-4o-mini", "b is back on the primary");
    assert.equal(primary.requests.length, before + 1);
  });

  test("a client reads the records of the routes its calls named in the last minute, not of every one it met", T, async (t) => {
    // A gateway passing its users' models on meets ever new routes: the store is asked for those
    // in use. The clock is the test's (Date); the client's timers are real.
    t.mock.timers.enable({ apis: ["Date"], now: 1_700_000_000_000 });
    const reads = [];
    const store = { read: (keys) => (reads.push(keys), {}), write: () => {} };
    const stub = async () => new Response("{}");
    const f = createRetryFetch({ fetch: stub, health: { store, refreshMs: 0, firstReadMs: 0 } });
    const url = "http://127.0.0.1:9/v1/chat/completions";
    const callModel = async (model) => {
      assert.equal((await f(url, { method: "POST", body: JSON.stringify({ model }) })).status, 200);
      await sleep(5); // the read it started is done
      return reads.at(-1).map((k) => k.split(" ")[1]).sort();
    };
    assert.deepEqual(await callModel("a"), ["a"]);
    t.mock.timers.tick(30_000);
    assert.deepEqual(await callModel("b"), ["a", "b"]);
    t.mock.timers.tick(31_000);
    assert.deepEqual(await callModel("c"), ["b", "c"], "a, last named 61 s ago, is no longer read");
    assert.deepEqual(await callModel("a"), ["a", "b", "c"], "until a call names it again");
  });

  test("a 429's wait hint pauses the route for every instance", T, async (t) => {
    const { primary, backup, fallbacks } = await providers(t, [{ status: 429, headers: { "retry-after": "30" } }, { status: 200 }]);
    const store = memoryHealthStore();
    const health = { store, refreshMs: 0 };
    const a = createRetryFetch({ maxAttempts: 1, fallbacks, health });
    const b = createRetryFetch({ maxAttempts: 1, fallbacks, health });
    const first = await a(primary.url + chat, chatInit());
    assert.equal(retryReport(first).model, "backup", "a's 429 asked for 30 s: the fallback served");
    await a.flushHealth();
    const res = await b(primary.url + chat, chatInit());
    assert.equal(retryReport(res).model, "backup");
    assert.deepEqual(retryReport(res).skipped, [0], "b skipped the cooling route");
    assert.equal(primary.requests.length, 1, "only a's request met the 429");
    assert.equal(backup.requests.length, 2);
  });

  test("without a shared store each instance pays for the outage itself", T, async (t) => {
    const { primary, fallbacks } = await providers(t, [{ status: 503 }]);
    const a = createRetryFetch({ maxAttempts: 1, breaker, fallbacks });
    const b = createRetryFetch({ maxAttempts: 1, breaker, fallbacks });
    for (let i = 0; i < 2; i++) await a(primary.url + chat, chatInit());
    await b(primary.url + chat, chatInit());
    assert.equal(primary.requests.length, 3, "b met the outage too");
  });
});

describe("a store that fails or hangs", () => {
  test("a read or write that rejects is told to onError; the calls go on", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }, { status: 503 }, { status: 200 }] });
    const errors = [];
    const store = { read: async () => { throw new Error("store down"); }, write: () => Promise.reject(new Error("store down")) };
    const f = createRetryFetch({ backoff: { initialMs: 5, maxMs: 10 }, breaker: { failureThreshold: 2 }, health: { store, onError: (e, op) => errors.push([op, e.message]) } });
    const res = await f(mock.url + chat, chatInit());
    assert.equal(res.status, 200);
    await f.flushHealth();
    // Read once; written twice (the breaker opened after two 503s, then its probe closed it).
    assert.deepEqual(errors, [["read", "store down"], ["write", "store down"], ["write", "store down"]]);
  });

  test("a read that resolves to what is not records is told to onError; the call goes on", T, async () => {
    for (const answer of [null, "records", [], 5]) {
      const errors = [];
      const store = { read: async () => answer, write: async () => {} };
      const f = createRetryFetch({ fetch: async () => new Response("{}"), health: { store, onError: (e, op) => errors.push([op, e.name]) } });
      assert.equal((await f("https://api.example/v1/chat/completions", chatInit())).status, 200);
      await f.flushHealth();
      assert.deepEqual(errors, [["read", "TypeError"]], JSON.stringify(answer));
    }
  });

  test("a store that never answers delays the first call at most firstReadMs, and no later call", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 200 }] });
    const store = { read: () => new Promise(() => {}), write: () => new Promise(() => {}) };
    const f = createRetryFetch({ health: { store, firstReadMs: 100 } });
    const first = await settle(() => f(mock.url + chat, chatInit()));
    assert.equal(first.value.status, 200);
    assert.ok(first.ms >= 90 && first.ms < 600, `first call ${first.ms.toFixed(0)} ms`);
    const second = await settle(f(mock.url + chat, chatInit()));
    assert.equal(second.value.status, 200);
    assert.ok(second.ms < 80, `second call ${second.ms.toFixed(0)} ms: not waiting for the store`);
  });

  test("a read or write that hangs is given up after timeoutMs: flushHealth settles, later reads and writes go on", T, async (t) => {
    const mock = await mockFor(t, { script: [{ status: 503 }] });
    const calls = { read: 0, write: 0 };
    const errors = [];
    const store = {
      read: () => (calls.read++, new Promise(() => {})),
      write: () => (calls.write++, new Promise(() => {})),
    };
    const f = createRetryFetch({
      maxAttempts: 1,
      breaker: { failureThreshold: 1, cooldownMs: 10, maxCooldownMs: 10 },
      health: { store, refreshMs: 0, firstReadMs: 0, timeoutMs: 100, onError: (e, op) => errors.push([op, e.name]) },
    });
    await f(mock.url + chat, chatInit()); // a 503: the breaker opens, and tells
    const flushed = await settle(f.flushHealth());
    assert.ok(flushed.ok && flushed.ms < 600, `flushHealth settled after ${flushed.ms.toFixed(0)} ms`);
    assert.deepEqual(errors.map(([, name]) => name).sort(), ["TimeoutError", "TimeoutError"], JSON.stringify(errors));
    await sleep(20); // past the breaker's 10 ms cooldown: its probe fails, it tells again
    await f(mock.url + chat, chatInit());
    await f.flushHealth();
    assert.equal(calls.write, 2, "the second batch was written although the first never answered");
    assert.equal(calls.read, 2, "a second read started although the first never answered");
  });

  test("bad health options name themselves", () => {
    assert.throws(() => createRetryFetch({ health: {} }), { name: "TypeError", message: /^health\.store must be an object with read\(keys\) and write\(records\) methods/ });
    assert.throws(() => createRetryFetch({ health: { store: memoryHealthStore(), refreshMs: -1 } }), { name: "RangeError", message: /^health\.refreshMs/ });
    assert.throws(() => createRetryFetch({ health: { store: memoryHealthStore(), refresMs: 5 } }), { name: "TypeError", message: /health\.refreshMs/ });
    assert.throws(() => createRetryFetch({ health: { store: memoryHealthStore() }, breaker: false }), { name: "RangeError", message: /^health .*needs them/ });
    assert.throws(() => createRetryFetch({ health: { store: memoryHealthStore(), timeoutMs: 0 } }), { name: "RangeError", message: /^health\.timeoutMs must be between 1 and/ });
  });
});

describe("pacing shared through a store", () => {
  test("clients sharing a store keep together under the provider's rate limit; alone, each sends at the whole rate", { timeout: 60_000 }, async (t) => {
    const store = memoryHealthStore();
    const fleet = (health) => Array.from({ length: 4 }, () => createRetryFetch({ deadlineMs: 30_000, ...health }));
    const shared = await limitedFleet(t, fleet({ health: { store } }));
    const alone = await limitedFleet(t, fleet({}));
    t.diagnostic(`shared: ${JSON.stringify(shared)}; alone: ${JSON.stringify(alone)}`);
    assert.equal(shared.served, 160, "every call served");
    assert.ok(shared.rejected <= 8, `${shared.rejected} of ${shared.requests} requests met a 429`);
    assert.ok(alone.rejected >= 4 * Math.max(shared.rejected, 5), `alone: ${alone.rejected} 429s`);
  });
});

describe("a store's pace", () => {
  /** A client that has met a busy route — calls one after another until one asked the store
   * (over half of the provider's 10 used) — and whose store's pace is `pace` from then on;
   * `sent`: the requests until then. */
  async function busy(t, pace, health = {}) {
    const mock = await mockFor(t, { limit: { rate: 20, burst: 10 } });
    const memory = memoryHealthStore();
    let armed = false;
    let warm = 0;
    const store = { ...memory, pace: (a) => (armed ? pace(a) : (warm++, memory.pace(a))) };
    const errors = [];
    const f = createRetryFetch({ health: { store, firstReadMs: 0, onError: (e, op) => errors.push([op, e.name]), ...health } });
    while (warm === 0 && mock.requests.length < 10) assert.equal((await f(mock.url + chat, chatInit())).status, 200);
    assert.ok(warm > 0 && mock.requests.length >= 5, `busy after ${mock.requests.length} calls`);
    armed = true;
    return { mock, sent: mock.requests.length, errors, call: (init) => settle(() => f(mock.url + chat, chatInit(init))) };
  }

  test("the memory store hands out a burst, then one slot an interval, in order, to every client", () => {
    const store = memoryHealthStore();
    const ask = { key: "k", interval: 10, burst: 3, tat: 0 };
    const t0 = Date.now();
    const [k, other] = store.pace([{ ...ask, n: 5 }, { ...ask, key: "other", n: 1 }]);
    const at = k[0];
    assert.ok(at >= t0 && at <= Date.now(), "the first slots are now");
    assert.deepEqual(k.map((s) => s - at), [0, 0, 0, 10, 20]);
    assert.ok(other[0] - at < 10, "another route's bucket is its own");
    const [[now], [next]] = store.pace([{ ...ask, n: 1, within: 0 }, { ...ask, n: 1 }]);
    assert.ok(now - at >= 30 && next === now, `a later slot is not taken within 0 ms: it goes to the next ask (+${now - at}, +${next - at})`);
    assert.throws(() => store.pace([{ ...ask, n: 0 }]), { name: "RangeError", message: /pace: n is out of range: 0/ });
    assert.throws(() => store.pace([{ ...ask, n: 1, interval: NaN }]), { name: "RangeError", message: /interval/ });
    assert.throws(() => store.pace({ k: ask }), { name: "TypeError", message: /array/ });
  });

  test("the memory store forgets records a day stale once it holds 1,024, and keeps the rest", () => {
    const store = memoryHealthStore();
    const now = Date.now();
    const day = 86_400_000;
    const stale = { openedAt: now - 3 * day, openUntil: now - 3 * day + 60_000, closedAt: now - 2 * day, cooledUntil: 0 };
    const live = {
      open: { openedAt: now - 2 * day, openUntil: now + 60_000, closedAt: 0, cooledUntil: 0 },
      closed: { openedAt: now - 2 * day, openUntil: 0, closedAt: now - day + 60_000, cooledUntil: 0 },
      paused: { openedAt: 0, openUntil: 0, closedAt: 0, cooledUntil: now + 1_000 },
    };
    const staleKeys = Array.from({ length: 1_020 }, (_, i) => `stale-${i}`);
    store.write({ ...live, ...Object.fromEntries(staleKeys.map((k) => [k, stale])) });
    assert.equal(Object.keys(store.read(staleKeys)).length, 1_020, "below 1,024 records nothing is swept");
    store.write({ more: live.open });
    assert.deepEqual(store.read(staleKeys), {}, "at 1,024, every record a day stale is forgotten");
    assert.deepEqual(store.read(["open", "closed", "paused", "more"]), { ...live, more: live.open }, "the rest are kept whole");
  });

  test("a store's maps are swept of what is stale once they have doubled, not on every write", async () => {
    const { sweeper } = await import("../../pkg/health-pace.js");
    const map = new Map();
    const sweep = sweeper(map, (v, now) => v <= now);
    for (let i = 0; i < 1_023; i++) map.set(`old-${i}`, 1);
    assert.deepEqual(sweep(5), [], "below 1,024 nothing is dropped");
    map.set("live", 10);
    assert.equal(sweep(5).length, 1_023, "at 1,024 the stale entries go");
    assert.deepEqual([...map.keys()], ["live"]);
    for (let i = 0; i < 1_022; i++) map.set(`again-${i}`, 1);
    assert.equal(sweep(5).length, 0, "the next sweep waits until the map holds 1,024 again");
    map.set("last", 1);
    assert.equal(sweep(5).length, 1_023);
    for (let i = 0; i < 1_500; i++) map.set(`live-${i}`, 10);
    assert.equal(sweep(5).length, 0, "nothing stale: the 1,501 live entries stay");
    for (let i = 0; i < 1_500; i++) map.set(`later-${i}`, 1);
    assert.equal(sweep(5).length, 0, "with 1,501 kept, the next sweep waits for 3,002");
    map.set("x", 1);
    assert.equal(sweep(5).length, 1_501);
    assert.equal(map.size, 1_501);
  });

  test("a busy route's call asks the store, and sends at the slot it was given", T, async (t) => {
    const asks = [];
    const { mock, sent, call } = await busy(t, (a) => {
      asks.push(a);
      return a.map(() => [Date.now() + 150]);
    });
    const r = await call();
    assert.equal(r.value?.status, 200);
    assert.equal(asks.length, 1);
    const [ask] = asks[0];
    assert.match(ask.key, /^http:\/\/127\.0\.0\.1:\d+/);
    assert.equal(ask.within, undefined, "no other route: the next slot, however late");
    assert.equal(ask.n, 1);
    assert.equal(ask.burst, 10);
    assert.ok(ask.interval > 0 && ask.tat > Date.now() - 1_000, JSON.stringify(ask));
    const gap = mock.requests[sent].t - mock.requests[sent - 1].t;
    assert.ok(gap >= 140, `sent ${gap.toFixed(0)} ms after the last, at its slot`);
  });

  test("a pace that throws is told to onError; the call goes on pacing alone, and pace is not asked again for refreshMs", T, async (t) => {
    let asked = 0;
    const { errors, call } = await busy(t, () => {
      asked++;
      throw new Error("store down");
    });
    assert.equal((await call()).value?.status, 200);
    assert.equal((await call()).value?.status, 200);
    assert.equal(asked, 1);
    assert.deepEqual(errors.filter(([op]) => op === "pace"), [["pace", "Error"]]);
  });

  test("a pace that hangs is given up after timeoutMs; the call is served", T, async (t) => {
    let asked = 0;
    const { errors, call } = await busy(t, () => (asked++, new Promise(() => {})), { timeoutMs: 150 });
    const r = await call();
    assert.equal(r.value?.status, 200);
    assert.ok(asked === 1 && r.ms >= 140 && r.ms < 1_000, `asked ${asked}, ${r.ms.toFixed(0)} ms`);
    assert.deepEqual(errors.filter(([op]) => op === "pace"), [["pace", "TimeoutError"]]);
  });

  for (const [what, answer, told = []] of [
    ["no list", () => 5, [["pace", "TypeError"]]],
    ["a list of the wrong things", (a) => a.map(() => "soon")],
    ["slots out of range", (a) => a.map(() => [1e300, NaN, -5])],
    ["too few lists", () => []],
  ]) {
    test(`a pace that answers ${what}: the call is served at once, pacing alone`, T, async (t) => {
      const { errors, call } = await busy(t, answer);
      const r = await call();
      assert.equal(r.value?.status, 200);
      assert.ok(r.ms < 1_000, `${r.ms.toFixed(0)} ms`);
      assert.deepEqual(errors, told, "what is not a list is told to onError");
    });
  }

  test("a store too slow for a call's deadline: the call sends at its own slot within it", T, async (t) => {
    const { mock, sent, call } = await busy(t, () => new Promise(() => {}), { timeoutMs: 5_000 });
    const results = await Promise.all(Array.from({ length: 4 }, () => call({ retry: { deadlineMs: 400 } })));
    for (const r of results) {
      assert.equal(r.value?.status, 200, `${r.error}`);
      assert.ok(r.ms < 450, `${r.ms.toFixed(0)} ms, not the store's 5 s`);
    }
    assert.equal(mock.requests.length, sent + 4);
  });

  test("a call waiting for its slot ends at once when its signal aborts, sending nothing", T, async (t) => {
    const { mock, sent, call } = await busy(t, () => new Promise(() => {}), { timeoutMs: 10_000 });
    const ac = new AbortController();
    const r = call({ signal: ac.signal });
    await sleep(30);
    ac.abort(new Error("caller gave up"));
    const { error, ms } = await r;
    assert.equal(error?.message, "caller gave up");
    assert.ok(ms < 300, `${ms.toFixed(0)} ms`);
    assert.equal(mock.requests.length, sent, "nothing sent");
  });

  test("a pace that is not a function names itself", () => {
    assert.throws(() => createRetryFetch({ health: { store: { ...memoryHealthStore(), pace: 5 } } }), { name: "TypeError", message: /^health\.store\.pace must be a function/ });
  });
});
