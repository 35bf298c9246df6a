// Shared health under an outage: N instances (retry clients standing for servers) against the
// storm benchmark's loopback mock provider (bench/storm-mock.mjs: 200 req/s, burst 20), each with
// a healthy fallback route (a second mock). An open-loop load of 100 new calls/s for 25 s, spread
// round-robin over the instances (2 calls/s in a sparse variant); the primary answers 503 to
// everything from t = 5 s to t = 15 s.
// Compared: per-instance health (each instance's breakers learn alone) and health shared through a
// store — memoryHealthStore(), and Redis (llm-retry/health/redis over node-redis, against a
// redis-server started here on 127.0.0.1) when redis-server is installed. The clients' options are
// the defaults plus the fallback (and the health option).
//
// Reported: the requests the primary received during the outage, the calls served (during the
// outage and overall), and the latency a store adds to a successful call on the happy path
// (sequential calls to a healthy mock, with and without a store).
// Then shared pacing: the same N instances at 300 new calls/s in all for 10 s (1.5x the mock's
// 200/s, whose every answer carries OpenAI's rate-limit headers), one route, no fallback: the
// 429s the provider sent, the calls served and their latency, per-instance against shared.
//
// Run:  make bench, or node bench/health.mjs (after `make package` and `cd bench && npm ci`)
// Knobs: HEALTH_N=4 instances; HEALTH_SCALE=1 multiplies the durations; PKG=dir: another build.
import { fork } from "node:child_process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startRedis } from "../tests/js/redis-server.mjs";

const N = Number(process.env.HEALTH_N ?? 4);
const SCALE = Number(process.env.HEALTH_SCALE ?? 1);
const PKG_DIR = process.env.PKG ? resolve(process.env.PKG) : new URL("../pkg/", import.meta.url).pathname;
const { createRetryFetch, memoryHealthStore } = await import(pathToFileURL(resolve(PKG_DIR, "node.js")).href);
const { redisHealthStore } = await import(pathToFileURL(resolve(PKG_DIR, "health-redis.js")).href);

const s = (ms) => ms * SCALE;
const RATE = 100; // new calls per second, all instances together
const DURATION = s(25_000);
const OUTAGE = { fromMs: s(5_000), toMs: s(15_000) };
const now = () => performance.timeOrigin + performance.now();
const BODY = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }] });
const init = (signal) => ({ method: "POST", headers: { "content-type": "application/json", authorization: "Bearer sk-bench" }, body: BODY, signal });

/** A storm mock in its own process (see bench/storm-mock.mjs for the protocol). */
async function startMock() {
  const child = fork(new URL("./storm-mock.mjs", import.meta.url), [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [] });
  const exited = new Promise((r) => child.once("exit", r));
  const next = (type) => new Promise((res) => child.on("message", function on(m) {
    if (m.type === type) {
      child.off("message", on);
      res(m);
    }
  }));
  const { port } = await next("ready");
  return {
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    async start(config) {
      const started = next("started");
      child.send({ type: "start", config });
      await started;
    },
    async stop() {
      const log = next("log");
      child.send({ type: "stop" });
      const l = await log;
      await exited;
      return l;
    },
  };
}

/** `count` calls at `rate` a second from `t0` on, dealt round-robin over `clients`, each given
 * 60 s; resolves when all have ended, to one record per call: its start (ms since t0), whether it
 * was served, and its latency (ms). */
async function openLoop(clients, url, t0, rate, count) {
  const recs = [];
  await new Promise((done) => {
    let i = 0;
    const tick = () => {
      const t = now();
      while (i < count && t0 + (i * 1000) / rate <= t) {
        const rec = { start: t - t0, ok: false };
        recs.push(rec);
        rec.done = clients[i % clients.length](url, init(AbortSignal.timeout(60_000)))
          .then(async (res) => {
            await res.arrayBuffer();
            rec.ok = res.ok;
            rec.ms = now() - t0 - rec.start;
          }, () => {});
        i++;
      }
      if (i >= count) return done();
      setTimeout(tick, Math.max(0, t0 + (i * 1000) / rate - now()));
    };
    setTimeout(tick, Math.max(0, t0 - now()));
  });
  await Promise.all(recs.map((r) => r.done));
  return recs;
}

/** One outage run: `makeStore()` gives each instance's store (undefined: per-instance health). */
async function outageRun(makeStore, opts) {
  const [primary, backup] = [await startMock(), await startMock()];
  const fallbacks = [{ url: backup.url, model: "backup" }];
  const clients = [];
  for (let i = 0; i < N; i++) {
    const store = await makeStore?.();
    clients.push(createRetryFetch({ fallbacks, ...opts.client, ...(store ? { health: { store, ...opts.health } } : {}) }));
  }
  const t0 = now() + 200;
  const base = { t0, mode: "bucket", rate: 200, burst: 20, latencyMs: 5 };
  await primary.start({ ...base, outage: OUTAGE });
  await backup.start({ ...base, outage: null });
  const rate = opts.rate ?? RATE;
  const recs = await openLoop(clients, primary.url, t0, rate, Math.round((rate * DURATION) / 1000));
  await Promise.all(clients.map((c) => c.flushHealth()));
  const [p, b] = [await primary.stop(), await backup.stop()];
  const inOutage = (t) => t >= OUTAGE.fromMs && t < OUTAGE.toMs;
  const during = recs.filter((r) => inOutage(r.start));
  return {
    calls: recs.length,
    served: recs.filter((r) => r.ok).length,
    during: during.length,
    servedDuring: during.filter((r) => r.ok).length,
    primaryDuring: Array.from(p.times).filter(inOutage).length,
    primaryAll: p.times.length,
    backupAll: b.times.length,
  };
}

/** Shared pacing: N instances over the mock's limit (see the header); `makeStore()` as above. */
async function rateRun(makeStore) {
  const mock = await startMock();
  const clients = [];
  for (let i = 0; i < N; i++) {
    const store = await makeStore?.();
    clients.push(createRetryFetch(store ? { health: { store } } : {}));
  }
  const t0 = now() + 200;
  await mock.start({ t0, mode: "bucket", rate: 200, burst: 20, latencyMs: 5, outage: null });
  const recs = await openLoop(clients, mock.url, t0, 300, Math.round((300 * s(10_000)) / 1000));
  await Promise.all(clients.map((c) => c.flushHealth()));
  const log = await mock.stop();
  const statuses = Array.from(log.statuses);
  const lat = recs.filter((r) => r.ok).map((r) => r.ms).sort((a, b) => a - b);
  return {
    calls: recs.length,
    served: lat.length,
    requests: statuses.length,
    rejected: statuses.filter((x) => x === 429).length,
    p50: lat[lat.length >> 1] ?? NaN,
    p99: lat[Math.floor(lat.length * 0.99)] ?? NaN,
  };
}

/** Happy path: one client per config, called in turn against a healthy mock (so machine noise
 * hits every config alike); per config the median and mean latency, ms. */
async function happyPath(stores) {
  const mock = await startMock();
  await mock.start({ t0: now(), mode: "bucket", rate: 1e6, burst: 1e6, latencyMs: 0, outage: null });
  const fs = stores.map((store) => createRetryFetch(store ? { health: { store } } : {}));
  const lat = fs.map(() => []);
  for (let i = 0; i < 3_000; i++) {
    for (let j = 0; j < fs.length; j++) {
      const t = performance.now();
      const res = await fs[j](mock.url, init());
      await res.arrayBuffer();
      if (i >= 500) lat[j].push(performance.now() - t);
    }
  }
  await Promise.all(fs.map((f) => f.flushHealth()));
  await mock.stop();
  return lat.map((l) => {
    l.sort((a, b) => a - b);
    return { p50: l[l.length >> 1], mean: l.reduce((a, b) => a + b, 0) / l.length };
  });
}

// ---- the runs ------------------------------------------------------------------------------
let redis = null;
const redisClients = [];
try {
  redis = await startRedis();
} catch (e) {
  console.log(`(no Redis column: ${e.message.split("\n")[0]})`);
}
let createClient;
if (redis) ({ createClient } = await import("redis"));
async function redisStore() {
  const c = createClient({ url: redis.url });
  c.on("error", () => {});
  await c.connect();
  redisClients.push(c);
  return redisHealthStore(c);
}

const configs = [
  ["per-instance", undefined],
  ["shared: memory", () => {
    const store = memoryHealthStore();
    return () => store;
  }],
  ...(redis ? [["shared: Redis", () => redisStore]] : []),
];
// The clients' defaults (breaker cooldown 250–750 ms, health read every 1 s); a breaker that
// stays open longer, as for an outage of minutes, with reads every 250 ms; the same with sparse
// traffic (2 new calls/s in all: one per instance every 2 s), where an instance meets the outage seldom.
const LONG = { client: { breaker: { cooldownMs: 2_000, maxCooldownMs: 8_000 } }, health: { refreshMs: 250 } };
const SETUPS = [
  ["defaults", { client: {}, health: {} }],
  ["cooldown 2–8 s, refreshMs 250", LONG],
  ["cooldown 2–8 s, refreshMs 250, 2 calls/s", { ...LONG, rate: 2 }],
];
const results = {};
const paced = {};
let happy;
try {
  for (const [setup, opts] of SETUPS) {
    for (const [label, make] of configs) results[`${setup}|${label}`] = await outageRun(make?.(), opts);
  }
  for (const [label, make] of configs) paced[label] = await rateRun(make?.());
  happy = await happyPath(await Promise.all(configs.map(([, make]) => (make ? make()() : undefined))));
} finally {
  for (const c of redisClients) c.destroy();
  await redis?.stop();
}

const secs = (ms) => `${+(ms / 1000).toFixed(2)} s`;
console.log(`\nshared health — ${N} instances, ${RATE} new calls/s for ${secs(DURATION)} against 200 req/s; the primary 503s from ${secs(OUTAGE.fromMs)} to ${secs(OUTAGE.toMs)}; a healthy fallback`);
const labels = configs.map(([l]) => l);
const table = (header, rows) => {
  const w = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r) => r.map((v, c) => (c === 0 ? v.padEnd(w[c]) : v.padStart(w[c]))).join("  ");
  console.log(line(header));
  console.log(w.map((n) => "─".repeat(n)).join("  "));
  for (const r of rows) console.log(line(r));
};
const ROWS = [
  ["primary requests during the outage", (r) => String(r.primaryDuring)],
  ["  per call started in the outage", (r) => (r.primaryDuring / r.during).toFixed(2)],
  ["calls served, started in the outage", (r) => `${r.servedDuring} / ${r.during}`],
  ["calls served, all", (r) => `${r.served} / ${r.calls}`],
  ["requests: primary / fallback", (r) => `${r.primaryAll} / ${r.backupAll}`],
];
for (const [setup] of SETUPS) {
  console.log(`\n${setup}`);
  table([`breaker and health: ${setup}`, ...labels], ROWS.map(([name, f]) => [name, ...labels.map((l) => f(results[`${setup}|${l}`]))]));
}
console.log(`\nhappy path: one client per column, called in turn against a healthy loopback mock (${3_000 - 500} calls each)`);
table(["", ...labels], [
  ["latency p50 / mean", ...happy.map((h) => `${h.p50.toFixed(3)} / ${h.mean.toFixed(3)} ms`)],
  ["added by the store: p50 / mean", ...happy.map((h, i) => (i === 0 ? "—" : `${(h.p50 - happy[0].p50).toFixed(3)} / ${(h.mean - happy[0].mean).toFixed(3)} ms`))],
]);
console.log(`\nshared pacing: ${N} instances at 300 new calls/s in all for ${secs(s(10_000))} against 200 req/s (burst 20, rate-limit headers on every answer), one route`);
table(["", ...labels], [
  ["429s the provider sent", ...labels.map((l) => String(paced[l].rejected))],
  ["requests per call", ...labels.map((l) => (paced[l].requests / paced[l].calls).toFixed(2))],
  ["calls served", ...labels.map((l) => `${paced[l].served} / ${paced[l].calls}`)],
  ["latency p50 / p99", ...labels.map((l) => `${secs(paced[l].p50)} / ${secs(paced[l].p99)}`)],
]);
