// Shared health through Redis (llm-retry/health/redis) on a real redis-server started here (see
// redis-server.mjs): clients standing for servers, each with its own Redis connection — node-redis
// (`redis`), ioredis, and a bare `sendCommand` client — against loopback mock providers.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import { createClient } from "redis";
import Redis from "ioredis";
import { createRetryFetch, retryReport } from "llm-retry";
import { redisHealthStore } from "llm-retry/health/redis";
import { T, mockFor, settle, chatInit, limitedFleet } from "./helpers.mjs";
import { startRedis } from "./redis-server.mjs";

const chat = "/v1/chat/completions";
const breaker = { failureThreshold: 2, cooldownMs: 5_000, maxCooldownMs: 5_000 };
const FIELDS = ["openedAt", "openUntil", "closedAt", "cooledUntil"];

/** Connections that are closed when the describe block ends. */
const opened = [];
async function nodeRedis(server) {
  const c = createClient({ url: server.url });
  c.on("error", () => {}); // reconnect noise once a server is stopped; the store reports failures
  await c.connect();
  opened.push(() => c.destroy());
  return c;
}
async function ioRedis(server) {
  const c = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  c.on("error", () => {});
  await c.connect();
  opened.push(() => c.disconnect());
  return c;
}
/** A client offering only node-redis's `sendCommand(args)`: the store's third way in. */
async function sendCommandOnly(server) {
  const c = await nodeRedis(server);
  return { sendCommand: (args) => c.sendCommand(args) };
}
function closeAll() {
  for (const close of opened.splice(0)) close();
}

/** Two mocks: a primary answering `script`, a healthy fallback. */
async function providers(t, script) {
  const primary = await mockFor(t, { script });
  const backup = await mockFor(t, { script: [{ status: 200 }] });
  return { primary, backup, fallbacks: [{ url: backup.url + chat, model: "backup" }] };
}

let n = 0;
/** A fresh key prefix per test: tests share one server but never each other's records. */
const freshPrefix = () => `test${++n}:llm-retry:health:`;

describe("Redis health store, on a real redis-server", () => {
  let server;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    closeAll();
    await server?.stop();
  });

  test("once client A met the primary's outage, B (ioredis) and C (sendCommand) skip it without a request; the fallback serves", T, async (t) => {
    const { primary, backup, fallbacks } = await providers(t, [{ status: 503 }]);
    const prefix = freshPrefix();
    const raw = await nodeRedis(server);
    const errors = [];
    const health = (client) => ({ store: redisHealthStore(client, { prefix }), refreshMs: 0, firstReadMs: 2_000, onError: (e, op) => errors.push([op, e.message]) });
    const a = createRetryFetch({ maxAttempts: 1, breaker, fallbacks, health: health(await nodeRedis(server)) });
    const b = createRetryFetch({ maxAttempts: 1, breaker, fallbacks, health: health(await ioRedis(server)) });
    const c = createRetryFetch({ maxAttempts: 1, breaker, fallbacks, health: health(await sendCommandOnly(server)) });

    for (let i = 0; i < 2; i++) assert.equal(retryReport(await a(primary.url + chat, chatInit())).model, "backup");
    assert.equal(primary.requests.length, 2, "A met the outage: two 503s, then its breaker opened");
    await a.flushHealth();

    const [key] = Object.keys(a.exportState().breakers).filter((k) => k.startsWith(primary.url));
    const stored = await raw.hGetAll(prefix + key);
    assert.deepEqual(Object.keys(stored).sort(), ["openUntil", "openedAt"], `one hash per route: ${JSON.stringify(stored)}`);
    for (const v of Object.values(stored)) assert.match(v, /^\d{13}$/, "integers, ms since the epoch");
    assert.ok(Number(stored.openUntil) >= Number(stored.openedAt) + 5_000);
    const ttl = await raw.pTTL(prefix + key);
    assert.ok(ttl > 86_000_000 && ttl <= 86_400_000, `kept a day after its last write: ${ttl} ms`);

    for (const other of [b, c]) {
      const res = await other(primary.url + chat, chatInit());
      assert.equal(res.status, 200);
      assert.equal(retryReport(res).model, "backup", "the fallback served");
      assert.deepEqual(retryReport(res).skipped, [0], "the primary was skipped");
    }
    assert.equal(primary.requests.length, 2, "B and C sent nothing to the route A found down");
    assert.equal(backup.requests.length, 4);
    assert.deepEqual(errors, []);
  });

  test("a 429's Retry-After seen by A (ioredis) pauses the route for B (node-redis)", T, async (t) => {
    const { primary, backup, fallbacks } = await providers(t, [{ status: 429, headers: { "retry-after": "30" } }, { status: 200 }]);
    const prefix = freshPrefix();
    const health = async (client) => ({ store: redisHealthStore(client, { prefix }), refreshMs: 0, firstReadMs: 2_000 });
    const a = createRetryFetch({ maxAttempts: 1, fallbacks, health: await health(await ioRedis(server)) });
    const b = createRetryFetch({ maxAttempts: 1, fallbacks, health: await health(await nodeRedis(server)) });
    const t0 = Date.now();
    assert.equal(retryReport(await a(primary.url + chat, chatInit())).model, "backup", "A's 429 asked for 30 s");
    await a.flushHealth();
    const res = await b(primary.url + chat, chatInit());
    assert.equal(retryReport(res).model, "backup");
    assert.deepEqual(retryReport(res).skipped, [0], "B skipped the cooling route");
    assert.equal(primary.requests.length, 1, "only A's request met the 429");
    assert.equal(backup.requests.length, 2);
    const key = Object.keys(a.exportState().breakers).find((k) => k.startsWith(primary.url));
    const { cooledUntil } = (await redisHealthStore(await nodeRedis(server), { prefix }).read([key]))[key];
    assert.ok(cooledUntil >= t0 + 29_000 && cooledUntil <= Date.now() + 31_000, `cooledUntil ${cooledUntil - t0} ms after the call`);
  });

  test("pace: the bucket hands out what the core's grant computes, to node-redis, ioredis and sendCommand clients alike", T, async () => {
    const prefix = freshPrefix();
    const [a, b, c] = [redisHealthStore(await nodeRedis(server), { prefix }), redisHealthStore(await ioRedis(server), { prefix }), redisHealthStore(await sendCommandOnly(server), { prefix })];
    const ask = { key: "k", interval: 10, burst: 3, tat: 0 };
    const t0 = Date.now();
    const [k, other] = await a.pace([{ ...ask, n: 5 }, { ...ask, key: "other", n: 1 }]);
    assert.ok(Math.abs(k[0] - t0) < 1_000, "on Redis's clock, ms since the epoch");
    assert.deepEqual(k.map((s) => s - k[0]), [0, 0, 0, 10, 20]);
    assert.ok(other[0] - k[0] < 10, "another route's bucket is its own");
    const [[now]] = await b.pace([{ ...ask, n: 1, within: 0 }]);
    const [[next]] = await c.pace([{ ...ask, n: 1 }]);
    assert.ok(now - k[0] >= 30 && next === now, `a later slot is not taken within 0 ms: it goes to the next ask (+${now - k[0]}, +${next - k[0]})`);
    await assert.rejects(a.pace([{ ...ask, n: 0 }]), { name: "RangeError", message: /n is out of range/ });
  });

  test("4 clients sharing Redis keep together under the provider's rate limit; alone, each sends at the whole rate", { timeout: 60_000 }, async (t) => {
    const prefix = freshPrefix();
    const makers = [nodeRedis, ioRedis, sendCommandOnly, nodeRedis];
    const shared = [];
    for (const make of makers) shared.push(createRetryFetch({ deadlineMs: 30_000, health: { store: redisHealthStore(await make(server), { prefix }) } }));
    const together = await limitedFleet(t, shared);
    const alone = await limitedFleet(t, makers.map(() => createRetryFetch({ deadlineMs: 30_000 })));
    t.diagnostic(`shared: ${JSON.stringify(together)}; alone: ${JSON.stringify(alone)}`);
    assert.equal(together.served, 160);
    assert.ok(together.rejected <= 10, `${together.rejected} of ${together.requests} requests met a 429`);
    assert.ok(alone.rejected >= 4 * Math.max(together.rejected, 5), `alone: ${alone.rejected} 429s`);
  });

  test("concurrent writes of older and newer records from 9 connections leave each field at its maximum (no lost update)", { timeout: 30_000 }, async () => {
    const prefix = freshPrefix();
    const makers = [nodeRedis, ioRedis, sendCommandOnly];
    const stores = await Promise.all(Array.from({ length: 9 }, (_, i) => makers[i % 3](server).then((c) => redisHealthStore(c, { prefix }))));
    const keys = ["r0", "r1", "r2", "r3"];
    const base = Date.now();
    const want = Object.fromEntries(keys.map((k) => [k, Object.fromEntries(FIELDS.map((f) => [f, 0]))]));
    let seed = 16;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    // Each store writes 60 batches: every record's fields are random (some 0: nothing to tell),
    // so older values often arrive after newer ones.
    const batches = stores.map(() =>
      Array.from({ length: 60 }, () => {
        const batch = {};
        for (const k of keys) {
          if (rand() < 0.3) continue;
          const r = Object.fromEntries(FIELDS.map((f) => [f, rand() < 0.2 ? 0 : base + Math.floor(rand() * 1e6)]));
          batch[k] = r;
          for (const f of FIELDS) want[k][f] = Math.max(want[k][f], r[f]);
        }
        return batch;
      }),
    );
    await Promise.all(stores.map(async (s, i) => {
      for (const batch of batches[i]) await s.write(batch);
    }));
    assert.deepEqual(await stores[0].read(keys), want, "what every instance reads");
    const raw = await nodeRedis(server);
    for (const k of keys) {
      const h = await raw.hGetAll(prefix + k);
      assert.deepEqual(Object.fromEntries(Object.entries(h).map(([f, v]) => [f, Number(v)])), want[k], `the hash of ${k}`);
    }
    // A write of smaller values changes nothing; a key never written reads as absent.
    await stores[1].write({ r0: { openedAt: 1, openUntil: 1, closedAt: 1, cooledUntil: 1 } });
    assert.deepEqual(await stores[2].read(["r0", "never"]), { r0: want.r0 });
  });

  test("a batch is one EVAL round trip: one command per write and per read", T, async () => {
    const sent = [];
    const c = await nodeRedis(server);
    const store = redisHealthStore({ sendCommand: (args) => (sent.push(args[0]), c.sendCommand(args)) }, { prefix: freshPrefix() });
    await store.write({ a: { openedAt: 5, openUntil: 9, closedAt: 0, cooledUntil: 0 }, b: { openedAt: 0, openUntil: 0, closedAt: 0, cooledUntil: 7 } });
    assert.deepEqual(await store.read(["a", "b", "c"]), {
      a: { openedAt: 5, openUntil: 9, closedAt: 0, cooledUntil: 0 },
      b: { openedAt: 0, openUntil: 0, closedAt: 0, cooledUntil: 7 },
    });
    assert.deepEqual(sent, ["EVAL", "EVAL"]);
  });
});

describe("Redis stopped mid-run", () => {
  after(closeAll);

  test("calls go on (the fallback serves, no call waits on Redis) and onError is told of reads and writes", { timeout: 30_000 }, async (t) => {
    const server = await startRedis();
    t.after(() => server.stop());
    const { primary, backup, fallbacks } = await providers(t, [{ status: 200 }]);
    const prefix = freshPrefix();
    const errors = { a: [], b: [] };
    const health = (client, who) => ({
      store: redisHealthStore(client, { prefix, timeoutMs: 300 }),
      refreshMs: 0,
      onError: (e, op) => errors[who].push(op),
    });
    const a = createRetryFetch({ maxAttempts: 1, breaker, fallbacks, health: health(await nodeRedis(server), "a") });
    const b = createRetryFetch({ maxAttempts: 1, breaker, fallbacks, health: health(await ioRedis(server), "b") });
    for (const f of [a, b]) assert.equal(retryReport(await f(primary.url + chat, chatInit())).model, "gpt-4o-mini");
    await Promise.all([a.flushHealth(), b.flushHealth()]);
    assert.deepEqual(errors, { a: [], b: [] }, "no error while Redis runs");

    await server.stop();
    primary.setScript([{ status: 503 }]); // the primary fails too: A's breaker opens and tells
    for (let i = 0; i < 3; i++) {
      for (const [who, f] of [["a", a], ["b", b]]) {
        const r = await settle(f(primary.url + chat, chatInit()));
        assert.ok(r.ok, `${who}'s call ${i} resolved: ${r.error}`);
        assert.equal(r.value.status, 200);
        assert.equal(retryReport(r.value).model, "backup");
        assert.ok(r.ms < 250, `${who}'s call ${i} took ${r.ms.toFixed(0)} ms: it did not wait for Redis`);
      }
    }
    const flushed = await settle(Promise.all([a.flushHealth(), b.flushHealth()]));
    assert.ok(flushed.ok && flushed.ms < 2_000, `flushHealth settled within the store's bound (${flushed.ms.toFixed(0)} ms)`);
    await new Promise((r) => setTimeout(r, 400)); // the reads in flight run out too
    for (const who of ["a", "b"]) {
      assert.ok(errors[who].includes("write"), `${who} was told its write failed: ${errors[who]}`);
      assert.ok(errors[who].includes("read"), `${who} was told its read failed: ${errors[who]}`);
    }
    assert.equal(primary.requests.length, 2 + 4, "each client met the outage itself (2 + 2), then skipped it");
    assert.equal(backup.requests.length, 6);
  });
});

describe("the module", () => {
  test("imports neither the wasm nor a Redis client (only the bucket's module), and is not in the entries", () => {
    const require = createRequire(import.meta.url);
    const path = require.resolve("llm-retry/health/redis");
    assert.match(path, /\/health-redis\.js$/, "the export maps to its own module");
    const src = readFileSync(path, "utf8");
    const imports = [...src.matchAll(/^\s*import\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]);
    assert.deepEqual(imports, ["./health-pace.js"]);
    assert.doesNotMatch(src, /\bimport\(|\brequire\(/);
    const entry = readFileSync(path.replace(/health-redis\.js$/, "node.js"), "utf8");
    assert.doesNotMatch(entry, /redisHealthStore|HMGET/);
  });

  test("its declarations take a node-redis and an ioredis client (tsc -p tsconfig.stores.json: types-stores/*.ts)", { timeout: 120_000 }, () => {
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    const here = fileURLToPath(new URL(".", import.meta.url));
    const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", "tsconfig.stores.json"], { encoding: "utf8", cwd: here });
    assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
  });

  test("a client it cannot drive, or bad options, throw at once", () => {
    assert.throws(() => redisHealthStore(undefined), { name: "TypeError", message: /^redisHealthStore: client must be/ });
    assert.throws(() => redisHealthStore({ get() {} }), { name: "TypeError", message: /no eval, call or sendCommand/ });
    assert.throws(() => redisHealthStore({ sendCommand() {} }, { prefix: 5 }), { name: "TypeError", message: /prefix/ });
    assert.throws(() => redisHealthStore({ sendCommand() {} }, { timeoutMs: 0 }), { name: "RangeError", message: /timeoutMs/ });
  });
});
