// experiment: N instances against the storm mock at 1.5x capacity, no outage
import { fork } from "node:child_process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
const N = Number(process.env.N ?? 4);
const PKG_DIR = new URL("../pkg/", import.meta.url).pathname;
const { createRetryFetch, memoryHealthStore } = await import(pathToFileURL(resolve(PKG_DIR, "node.js")).href);
const now = () => performance.timeOrigin + performance.now();
const BODY = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }] });
async function startMock() {
  const child = fork(new URL("./storm-mock.mjs", import.meta.url), [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [] });
  const exited = new Promise((r) => child.once("exit", r));
  const next = (type) => new Promise((res) => child.on("message", function on(m) { if (m.type === type) { child.off("message", on); res(m); } }));
  const { port } = await next("ready");
  return { url: `http://127.0.0.1:${port}/v1/chat/completions`,
    async start(config) { const s = next("started"); child.send({ type: "start", config }); await s; },
    async stop() { const l = next("log"); child.send({ type: "stop" }); const x = await l; await exited; return x; } };
}
const shared = process.env.SHARED === "1" ? memoryHealthStore() : undefined;
const mock = await startMock();
const clients = Array.from({ length: N }, () => createRetryFetch(shared ? { health: { store: shared } } : {}));
const t0 = now() + 200, RATE = Number(process.env.RATE ?? 300), DUR = 10_000;
await mock.start({ t0, mode: "bucket", rate: 200, burst: 20, latencyMs: 5, outage: null });
const recs = []; const count = RATE * DUR / 1000;
await new Promise((done) => { let i = 0; const tick = () => { const t = now();
  while (i < count && t0 + (i * 1000) / RATE <= t) { const rec = { ok: false, s: now() }; recs.push(rec);
    rec.done = clients[i % N](mock.url, { method: "POST", body: BODY, signal: AbortSignal.timeout(60000) }).then(async (r) => { await r.arrayBuffer(); rec.ok = r.ok; rec.e = now(); }, () => {}); i++; }
  if (i >= count) return done(); setTimeout(tick, Math.max(0, t0 + (i * 1000) / RATE - now())); }; setTimeout(tick, Math.max(0, t0 - now())); });
await Promise.all(recs.map((r) => r.done));
const log = await mock.stop();
const st = Array.from(log.statuses);
const lat = recs.filter(r=>r.ok).map(r=>r.e-r.s).sort((a,b)=>a-b);
console.log(JSON.stringify({ N, shared: !!shared, calls: recs.length, served: recs.filter((r) => r.ok).length, requests: st.length, r429: st.filter((s) => s === 429).length, p50: Math.round(lat[lat.length>>1]), p99: Math.round(lat[Math.floor(lat.length*0.99)]) }));
