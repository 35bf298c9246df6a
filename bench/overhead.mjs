// What retryFetch costs on the happy path, beside cockatiel, p-retry and the openai SDK's own
// retry wrapper, measured the same way in the same run (alternating rounds, medians):
//   1. over a stub transport (an in-memory `fetch` that resolves to a 200 Response): each client's
//      cost per successful call over the transport alone (target for llm-retry: ≤ 3 µs); and
//      llm-retry's when the response carries OpenAI's rate-limit headers, as OpenAI's all do
//      (pacing reads them), over a stub that sends them; and with an attempt timeout (figures,
//      not the target's: the target is for the defaults);
//   1b. the same, each call run cold: the CPU's code caches evicted before it, as a socket's work
//       does (the loopback row's gap without the socket's noise); the median over every call;
//   2. over loopback (a node:http server on 127.0.0.1): each client against raw fetch, reading
//      the body (target for llm-retry: ≤ +10 µs, ≤ 1.03×);
//   3. a 503 then a 200 over the stub with no backoff: the CPU time per call (the wait is idle,
//      so it is not in it), beside the 200-only call's, for llm-retry and cockatiel;
//   4. per-call cost with 1, 100 and 10,000 calls in flight through one client (stub transport
//      held until all have started), the calls finishing in the order they started and in any
//      order (what is freed in any order is what a free-list allocator's list grows with);
//   5. per-call cost when one client has seen 1, 1,000 and 10,000 routes (a gateway passing its
//      users' models on: one breaker and pacer a model), each call on one of them in turn.
// Run: make bench (builds pkg/ first), or node bench/overhead.mjs. Env: ROUNDS (default 15),
// PKG=dir (the llm-retry package to measure; default ../pkg), BEFORE=dir (a second build measured
// beside it in the same run, e.g. a copy of pkg/ from another commit), ONLY=stub,cold,loopback,retry,scale,routes.
import http from "node:http";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { retry as cRetry, handleAll, handleWhenResult, ExponentialBackoff } from "cockatiel";
import pRetry from "p-retry";
import OpenAI from "openai";

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const ONLY = (process.env.ONLY ?? "stub,cold,loopback,retry,scale,routes").split(",");
const load = async (dir) => import(pathToFileURL(resolve(dir, "node.js")).href);
const here = new URL(".", import.meta.url).pathname;
const pkgs = { "llm-retry": await load(process.env.PKG ?? resolve(here, "../pkg")) };
if (process.env.BEFORE) pkgs["llm-retry (before)"] = await load(process.env.BEFORE);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x, d = 2) => x.toFixed(d).padStart(8);
const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x".repeat(2000) }] });
const headers = { "content-type": "application/json", authorization: "Bearer sk-bench" };
const init = { method: "POST", headers, body };
const answer = JSON.stringify({ id: "c", object: "chat.completion", created: 0, model: "gpt-4o-mini", choices: [] });
const ok = () => new Response(answer, { status: 200, headers: { "content-type": "application/json" } });
const stub = async () => ok();
// What OpenAI answers with: its rate-limit headers on every response, which pacing reads (their
// limit is large enough that the few thousand calls a row makes never run the bucket down).
const LIMIT_HEADERS = {
  "content-type": "application/json", "x-ratelimit-limit-requests": "10000000", "x-ratelimit-remaining-requests": "9999999",
  "x-ratelimit-reset-requests": "6ms", "x-ratelimit-limit-tokens": "30000000", "x-ratelimit-remaining-tokens": "29999000",
  "x-ratelimit-reset-tokens": "2ms",
};
const limited = async () => new Response(answer, { status: 200, headers: LIMIT_HEADERS });
const LIMITED = ", OpenAI's rate-limit headers";
const sdkParams = { model: "gpt-4o-mini", messages: [{ role: "user", content: "x".repeat(2000) }] };

/** Runs each client `batch` calls in a row per round, in rotating order; µs per call, median over
 * rounds. With `before`, it runs before each call, untimed, and each call is timed on its own: the
 * median over every call (a round's mean would carry the one call a GC or an interrupt hit). */
async function rounds(clients, batch, n = ROUNDS, before = undefined) {
  const names = Object.keys(clients);
  const runs = Object.fromEntries(names.map((k) => [k, []]));
  for (const f of Object.values(clients)) for (let i = 0; i < Math.min(batch, 500); i++) before?.(), await f(); // warm up
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(r + j) % names.length];
      const f = clients[name];
      let ms = 0;
      if (before === undefined) {
        const t0 = performance.now();
        for (let i = 0; i < batch; i++) await f();
        ms = performance.now() - t0;
      } else {
        for (let i = 0; i < batch; i++) {
          before();
          const t0 = performance.now();
          await f();
          runs[name].push((performance.now() - t0) * 1000);
        }
        continue;
      }
      runs[name].push((ms * 1000) / batch);
    }
  }
  return Object.fromEntries(names.map((k) => [k, median(runs[k])]));
}

const cockatiel = cRetry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() });

if (ONLY.includes("stub")) {
  const clients = { "transport alone": () => stub("http://127.0.0.1:9/v1/chat/completions", init) };
  // The caller's signal costs the caller (an AbortController is ~5 µs in Node 20): its own baseline.
  clients["transport alone, with a new signal"] = () =>
    stub("http://127.0.0.1:9/v1/chat/completions", { ...init, signal: new AbortController().signal });
  // The same init built as a literal, as the Vercel AI SDK builds its own: V8 gives an object
  // spread and then extended (`{ ...init, signal }`) a hidden class of its own each call, so each
  // read of it misses V8's caches; a literal's reads do not. Both are what callers send.
  const literal = () => ({ method: "POST", headers, body, signal: new AbortController().signal });
  clients["transport alone, with a new signal (literal)"] = () => stub("http://127.0.0.1:9/v1/chat/completions", literal());
  // And as the openai SDK (v6, `fetchWithTimeout`) builds it: its signal first, then the rest
  // spread in (`{ signal, ...options }`), whose reads cost what a literal's do.
  const first = () => ({ signal: new AbortController().signal, ...init });
  clients["transport alone, with a new signal (first)"] = () => stub("http://127.0.0.1:9/v1/chat/completions", first());
  for (const [name, m] of Object.entries(pkgs)) {
    const rf = m.createRetryFetch({ fetch: stub });
    clients[name] = () => rf("http://127.0.0.1:9/v1/chat/completions", init);
    // What the SDKs send: an init with a signal of their own.
    clients[`${name}, with init.signal`] = () =>
      rf("http://127.0.0.1:9/v1/chat/completions", { ...init, signal: new AbortController().signal });
    clients[`${name}, with init.signal (literal)`] = () => rf("http://127.0.0.1:9/v1/chat/completions", literal());
    clients[`${name}, with init.signal (first)`] = () => rf("http://127.0.0.1:9/v1/chat/completions", first());
    // With an attempt timeout (a common setting for LLM calls): each attempt has a signal and a
    // timer of its own, its signal following the caller's when there is one.
    const timed = m.createRetryFetch({ fetch: stub, attemptTimeoutMs: 60_000 });
    clients[`${name}, attemptTimeoutMs`] = () => timed("http://127.0.0.1:9/v1/chat/completions", init);
    clients[`${name}, attemptTimeoutMs, init.signal (first)`] = () => timed("http://127.0.0.1:9/v1/chat/completions", first());
    // The application-level form over the same transport: fn called with its attempt's context
    // (a signal of its own, following the caller's when there is one).
    const r = m.createRetry();
    clients[`${name}, retry(fn)`] = () => r(() => stub("http://127.0.0.1:9/v1/chat/completions", init));
    clients[`${name}, retry(fn) with a signal`] = () =>
      r(() => stub("http://127.0.0.1:9/v1/chat/completions", init), { signal: new AbortController().signal });
  }
  clients[`transport alone${LIMITED}`] = () => limited("http://127.0.0.1:9/v1/chat/completions", init);
  for (const [name, m] of Object.entries(pkgs)) {
    const rf = m.createRetryFetch({ fetch: limited });
    clients[`${name}${LIMITED}`] = () => rf("http://127.0.0.1:9/v1/chat/completions", init);
  }
  clients["cockatiel retry"] = () => cockatiel.execute(() => stub("http://127.0.0.1:9/v1/chat/completions", init));
  clients["p-retry"] = () => pRetry(() => stub("http://127.0.0.1:9/v1/chat/completions", init), { retries: 3 });
  const sdk = new OpenAI({ apiKey: "sk-bench", baseURL: "http://127.0.0.1:9/v1", fetch: stub });
  clients["openai SDK (its retries)"] = () => sdk.chat.completions.create(sdkParams);
  const sdk0 = new OpenAI({ apiKey: "sk-bench", baseURL: "http://127.0.0.1:9/v1", fetch: stub, maxRetries: 0 });
  clients["openai SDK, maxRetries 0"] = () => sdk0.chat.completions.create(sdkParams);
  const sdkOver = new OpenAI({
    apiKey: "sk-bench", baseURL: "http://127.0.0.1:9/v1", maxRetries: 0,
    fetch: pkgs["llm-retry"].createRetryFetch({ fetch: stub }),
  });
  clients["openai SDK, maxRetries 0, over retryFetch"] = () => sdkOver.chat.completions.create(sdkParams);
  const us = await rounds(clients, 2000);
  const base = us["transport alone"];
  console.log(`1. stub transport: µs per successful call, median of ${ROUNDS} rounds of 2,000 (cost = over the transport alone, with a signal where the row has one)`);
  for (const [name, t] of Object.entries(us)) {
    const cost = name.startsWith("openai SDK, maxRetries 0, over") ? t - us["openai SDK, maxRetries 0"]
      : name.endsWith(LIMITED) ? t - us[`transport alone${LIMITED}`]
      : name.includes("(literal)") ? t - us["transport alone, with a new signal (literal)"]
      : name.includes("(first)") ? t - us["transport alone, with a new signal (first)"]
      : name.includes("signal") ? t - us["transport alone, with a new signal"] : t - base;
    const what = name.startsWith("openai SDK, maxRetries 0, over") ? "over the SDK with maxRetries 0" : "";
    console.log(`   ${name.padEnd(48)} ${fmt(t)} µs   cost ${fmt(cost)} µs ${what}`);
  }
  const target = us["llm-retry, with init.signal"] - us["transport alone, with a new signal"];
  console.log(`   ${target <= 3 ? "✓" : "✗"} llm-retry (SDK-like, with a signal): ${target.toFixed(2)} µs per call (target ≤ 3 µs)`);
  const firstCost = us["llm-retry, with init.signal (first)"] - us["transport alone, with a new signal (first)"];
  console.log(`   ${firstCost <= 3 ? "✓" : "✗"} llm-retry (the openai SDK's init, signal first): ${firstCost.toFixed(2)} µs per call (target ≤ 3 µs)`);
}

if (ONLY.includes("cold")) {
  // The stub again, each call run cold: before it, 4,000 small functions of distinct code run
  // (some MB of machine code; ~2 ms, not timed), evicting the CPU's code caches as the socket's,
  // the HTTP parser's and the server's work does between one call and the next. Each call is
  // timed on its own. This is the loopback row's gap without the socket's noise: what a call
  // misses after a round trip is code (reading 4 MB of data instead, as this row once did,
  // reproduced little of it). Fewer functions evict less: 1,000 hardly anything here.
  const arr = [1, 2, 3, 4];
  const fns = Array.from({ length: 4000 }, (_, i) => new Function("a",
    `let s = ${i}; for (let j = 0; j < 3; j++) { s = (s * 31 + a[j % a.length] + ${i}) | 0; if (s & ${1 << (i % 16)}) s ^= ${i * 7}; } return s;`));
  let kept = 0; // the functions' results, used so that they are run
  const evict = () => { for (const f of fns) kept ^= f(arr); };
  const url = "http://127.0.0.1:9/v1/chat/completions";
  const clients = { "transport alone": () => stub(url, init) };
  for (const [name, m] of Object.entries(pkgs)) {
    const rf = m.createRetryFetch({ fetch: stub });
    clients[name] = () => rf(url, init);
  }
  clients[`transport alone${LIMITED}`] = () => limited(url, init);
  for (const [name, m] of Object.entries(pkgs)) {
    const rf = m.createRetryFetch({ fetch: limited });
    clients[`${name}${LIMITED}`] = () => rf(url, init);
  }
  clients["cockatiel retry"] = () => cockatiel.execute(() => stub(url, init));
  const us = await rounds(clients, 100, ROUNDS, evict);
  const base = us["transport alone"];
  console.log(`1b. stub transport, each call run cold (the code caches evicted before it): µs per call, median of ${ROUNDS} × 100 calls each (cost over the transport alone)`);
  for (const [name, t] of Object.entries(us)) {
    const cost = t - (name.endsWith(LIMITED) ? us[`transport alone${LIMITED}`] : base);
    console.log(`   ${(name + ", cold").padEnd(48)} ${fmt(t, 1)} µs   cost ${fmt(cost)} µs`);
  }
}

/** A loopback server answering every request with a small JSON 200 (or `script`'s statuses in turn). */
async function server() {
  const s = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  s.keepAliveTimeout = 60_000;
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  return s;
}

if (ONLY.includes("loopback")) {
  const s = await server();
  const base = `http://127.0.0.1:${s.address().port}`;
  const url = `${base}/v1/chat/completions`;
  const clients = { "raw fetch": () => fetch(url, init).then((r) => r.text()) };
  clients["raw fetch, with a signal"] = () =>
    fetch(url, { ...init, signal: new AbortController().signal }).then((r) => r.text());
  for (const [name, m] of Object.entries(pkgs)) {
    const rf = m.createRetryFetch();
    clients[name] = () => rf(url, init).then((r) => r.text());
    clients[`${name}, with init.signal`] = () =>
      rf(url, { ...init, signal: new AbortController().signal }).then((r) => r.text());
  }
  clients["cockatiel retry"] = () => cockatiel.execute(() => fetch(url, init).then((r) => r.text()));
  const sdk = new OpenAI({ apiKey: "sk-bench", baseURL: `${base}/v1` });
  clients["openai SDK (its retries)"] = () => sdk.chat.completions.create(sdkParams);
  const sdkOver = new OpenAI({
    apiKey: "sk-bench", baseURL: `${base}/v1`, maxRetries: 0, fetch: pkgs["llm-retry"].createRetryFetch(),
  });
  clients["openai SDK, maxRetries 0, over retryFetch"] = () => sdkOver.chat.completions.create(sdkParams);
  const us = await rounds(clients, 200, ROUNDS * 2);
  s.close();
  const raw = us["raw fetch"];
  console.log(`2. loopback: µs per successful call (body read), median of ${ROUNDS * 2} rounds of 200; Δ against raw fetch (with a signal where the row has one)`);
  for (const [name, t] of Object.entries(us)) {
    const d = t - (name.includes("signal") ? us["raw fetch, with a signal"] : raw);
    console.log(`   ${name.padEnd(44)} ${fmt(t, 1)} µs   Δ ${d >= 0 ? "+" : "−"}${fmt(Math.abs(d), 1).trim()} µs (${(t / (t - d)).toFixed(3)}×)`);
  }
  const d = us["llm-retry, with init.signal"] - us["raw fetch, with a signal"];
  console.log(`   ${d <= 10 ? "✓" : "✗"} llm-retry with a signal vs raw fetch with a signal: ${d >= 0 ? "+" : ""}${d.toFixed(1)} µs (target ≤ +10 µs)`);
}

/** CPU µs per call (user + system) of `batch` calls in a row: waits on timers are idle, so not in it. */
async function cpu(f, batch) {
  for (let i = 0; i < 200; i++) await f();
  const xs = [];
  for (let r = 0; r < 7; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < batch; i++) await f();
    const c = process.cpuUsage(c0);
    xs.push((c.user + c.system) / batch);
  }
  return median(xs);
}

if (ONLY.includes("retry")) {
  let n = 0;
  const flaky = async () => (n++ % 2 === 0 ? new Response("busy", { status: 503 }) : ok());
  console.log("3. a 503 then a 200 (no backoff) over the stub: CPU µs per call, median of 7 batches of 1,000 (waits are idle)");
  const rows = [["transport alone, 200", () => stub()], ["transport alone, 503 + 200", () => flaky().then(() => flaky())]];
  for (const [name, m] of Object.entries(pkgs)) {
    const ok200 = m.createRetryFetch({ fetch: stub });
    const retried = m.createRetryFetch({ fetch: flaky, backoff: { initialMs: 0, maxMs: 0 }, breaker: false, budget: false });
    rows.push([`${name}, 200`, () => ok200("http://127.0.0.1:9/v1/chat/completions", init)]);
    rows.push([`${name}, 503 → 200`, () => { n = 0; return retried("http://127.0.0.1:9/v1/chat/completions", init); }]);
  }
  const cRetried = cRetry(handleWhenResult((r) => r.status >= 500), { maxAttempts: 3, backoff: new ExponentialBackoff({ initialDelay: 0, maxDelay: 0 }) });
  rows.push(["cockatiel retry, 200", () => cockatiel.execute(() => stub())]);
  rows.push(["cockatiel retry, 503 → 200", () => { n = 0; return cRetried.execute(() => flaky()); }]);
  for (const [name, f] of rows) console.log(`   ${name.padEnd(44)} ${fmt(await cpu(f, 1000))} µs CPU`);
}

if (ONLY.includes("scale")) {
  console.log("4. per-call cost with N calls in flight through one client (the stub transport holds each until all have started), median of 7 rounds (3 for 10,000): the calls finishing in the order they started, and in any order (shuffled, as calls of different lengths do)");
  let rng = 2026;
  const random = () => ((rng = (rng * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  for (const inFlight of [1, 100, 10_000]) {
    const rs = inFlight === 10_000 ? 3 : Math.min(ROUNDS, 7);
    const cells = [];
    for (const shuffled of [false, true]) {
      const per = Object.fromEntries(["transport alone", ...Object.keys(pkgs)].map((k) => [k, []]));
      let held = [];
      const transport = () => new Promise((r) => held.push(r)).then(ok);
      const clients = { "transport alone": transport };
      for (const [name, m] of Object.entries(pkgs)) clients[name] = m.createRetryFetch({ fetch: transport });
      const batch = Math.max(1, Math.floor(4_000 / inFlight));
      for (let r = 0; r < rs + 1; r++) {
        for (const [name, f] of Object.entries(clients)) {
          const t0 = performance.now();
          for (let b = 0; b < batch; b++) {
            const all = [];
            for (let i = 0; i < inFlight; i++) all.push(f("http://127.0.0.1:9/v1/chat/completions", init));
            while (held.length < inFlight) await new Promise(setImmediate); // every first attempt sent
            if (shuffled) {
              for (let i = held.length - 1; i > 0; i--) {
                const j = Math.floor(random() * (i + 1));
                [held[i], held[j]] = [held[j], held[i]];
              }
            }
            for (const open of held) open();
            held = [];
            await Promise.all(all);
          }
          if (r > 0) per[name].push(((performance.now() - t0) * 1000) / (batch * inFlight)); // round 0 warms up
        }
      }
      const base = median(per["transport alone"]);
      const costs = Object.keys(pkgs).map((k) => `${k} ${fmt(median(per[k]) - base)} µs`).join(", ");
      cells.push(`${shuffled ? "any order" : "in order"}: transport alone ${fmt(base)} µs, cost ${costs}`);
    }
    console.log(`   ${String(inFlight).padStart(6)} in flight: ${cells.join("   ")}`);
  }
}

if (ONLY.includes("routes")) {
  console.log("5. per-call cost when one client has seen N routes (models), each call on one of them in turn (stub transport), median of 7 rounds of 4,000");
  const modelInit = (model) => ({ ...init, body: `{"model":"${model}","messages":[]}` });
  for (const routes of [1, 1_000, 10_000]) {
    const inits = Array.from({ length: routes }, (_, i) => modelInit(`model-${i}`));
    const clients = { "transport alone": stub };
    for (const [name, m] of Object.entries(pkgs)) clients[name] = m.createRetryFetch({ fetch: stub });
    for (const [name, f] of Object.entries(clients)) if (name !== "transport alone") for (const i of inits) await f("http://127.0.0.1:9/v1/chat/completions", i);
    let k = 0;
    const per = Object.fromEntries(Object.keys(clients).map((n) => [n, []]));
    for (let r = 0; r < 7; r++) {
      for (const [name, f] of Object.entries(clients)) {
        const t0 = performance.now();
        for (let i = 0; i < 4_000; i++) await f("http://127.0.0.1:9/v1/chat/completions", inits[(k = (k + 7919) % routes)]);
        per[name].push(((performance.now() - t0) * 1000) / 4_000);
      }
    }
    const base = median(per["transport alone"]);
    const cells = Object.keys(pkgs).map((n) => `${n} cost ${fmt(median(per[n]) - base)} µs`);
    console.log(`   ${String(routes).padStart(6)} routes: transport alone ${fmt(base)} µs   ${cells.join("   ")}`);
  }
}
