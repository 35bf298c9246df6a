// Shared health across Worker isolates through the package's Durable Object
// ("llm-retry/health/durable-object"), in workerd through Miniflare. Several Worker scripts — the
// README's Worker (block `<!-- readme-test: workerd-health -->`) run as instances "a", "b", "c",
// each with its own client and breakers — bind one HealthObject, as the isolates of a deployed
// Worker do; loopback mock providers stand for the primary and the fallback. What is asserted is
// what a user would notice: the requests each provider received, which model answered, what
// the object holds (also after a restart), and that a failing object costs no call.

import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { Miniflare } from "miniflare";
import { mockFor, T } from "./harness.mjs";
import { here, PKG_DIR, WORKER_MODULES, WRANGLER_CONDITIONS, resolveExport } from "./runtimes.mjs";

const README = resolve(here, process.env.README ?? "../../README.md");
const CHAT = "/v1/chat/completions";
const MODEL = "gpt-4o-mini";
const SUBPATH = "./health/durable-object";

/** The README's Worker (the code of the block tagged `<!-- readme-test: workerd-health -->`). */
function readmeWorker() {
  const readme = readFileSync(README, "utf8");
  const m = readme.match(/<!-- readme-test: workerd-health -->\s*```js\n([\s\S]*?)^```/m);
  assert.ok(m, `${README} has no \`\`\`js block tagged <!-- readme-test: workerd-health -->`);
  return m[1];
}

/** A subpath export of the package for a set of conditions (first matching key wins, as in Node). */
function resolveSubpath(pkgDir, subpath, conditions) {
  let target = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).exports[subpath];
  while (target && typeof target === "object") {
    const key = Object.keys(target).find((k) => conditions.includes(k));
    assert.ok(key, `no export condition among ${conditions} in ${JSON.stringify(target)}`);
    target = target[key];
  }
  assert.equal(typeof target, "string", `package.json exports has no ${subpath}`);
  return join(pkgDir, target);
}

const ENTRY = resolveExport(PKG_DIR, WRANGLER_CONDITIONS);
const HEALTH_MODULE = resolveSubpath(PKG_DIR, SUBPATH, WRANGLER_CONDITIONS);

// Scripts given as source are named as if they sat here (git-ignored, removed afterwards), so
// that their imports of the package resolve into node_modules.
const scratch = join(here, ".health");
mkdirSync(scratch, { recursive: true });
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The one step wrangler's bundler would do that Miniflare does not: bare "llm-retry" specifiers
 * become paths to the files wrangler's conditions select. */
function linked(source, scriptPath) {
  const rel = (file) => relative(dirname(scriptPath), file).split(sep).join("/");
  return source
    .replace(/from "llm-retry\/health\/durable-object"/g, `from "${rel(HEALTH_MODULE)}"`)
    .replace(/from "llm-retry"/g, `from "${rel(ENTRY)}"`);
}

/**
 * One workerd (Miniflare) running the README's Worker (or `source`) as the instances `instances`, a probe Worker
 * (fixtures/health-probe.mjs) and `owner`'s extra script when the object's class lives elsewhere.
 * Every script binds HEALTH to the class `className` defined by the script `owner`. The README's
 * hosts become the mock providers. `persist`: a directory for the objects' storage (else memory).
 */
function startFleet({ primary, backup, instances = ["a", "b", "c"], className = "HealthObject", owner = "a", ownerScript, persist, source = readmeWorker() }) {
  const code = source.replaceAll("https://api.openai.com", primary).replaceAll("https://backup.example.com", backup);
  let output = "";
  const health = (name) => ({ className, useSQLite: true, ...(name === owner ? {} : { scriptName: owner }) });
  const worker = (name, scriptPath, source) => ({
    name,
    ...WORKER_MODULES,
    script: linked(source, scriptPath),
    scriptPath,
    bindings: { OPENAI_API_KEY: "sk-test" },
    durableObjects: { HEALTH: health(name) },
  });
  const probePath = join(here, "fixtures", "health-probe.mjs");
  const workers = [
    ...instances.map((n) => worker(n, join(scratch, `worker-${n}.js`), code)),
    worker("probe", probePath, readFileSync(probePath, "utf8")),
  ];
  if (ownerScript) workers.push(worker(owner, ownerScript, readFileSync(ownerScript, "utf8")));
  const mf = new Miniflare({
    workers,
    durableObjectsPersist: persist ?? false,
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (d) => (output += d));
      stderr.on("data", (d) => (output += d));
    },
  });
  const log = () => output;
  return {
    mf,
    log,
    /** The README Worker `name` handles a chat request: { status, model, text }. */
    async call(name) {
      const w = await mf.getWorker(name);
      const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hi" }] });
      const res = await w.fetch("http://worker.test/", { method: "POST", body });
      const text = await res.text();
      let model;
      try {
        model = JSON.parse(text).model;
      } catch {}
      return { status: res.status, model, text };
    },
    /** The probe's store call: POST /read or /write; { status, json }. */
    async probe(op, payload) {
      const res = await (await mf.getWorker("probe")).fetch(`http://probe.test/${op}`, { method: "POST", body: JSON.stringify(payload) });
      return { status: res.status, json: await res.json() };
    },
    dispose: () => mf.dispose().catch(() => {}),
  };
}

/** Two mocks: the primary answering `script`, a healthy fallback. */
async function providers(t, script, exhausted = "repeat-last") {
  const primary = await mockFor(t, { script, exhausted });
  const backup = await mockFor(t, { script: [{ status: 200 }] });
  return { primary, backup };
}

/** The health record of the primary route, once `ready(record)` holds (polled through the probe:
 * a Worker's writes land after its response, in ctx.waitUntil). */
async function recordOnce(fleet, key, ready, timeoutMs = 5_000) {
  const until = Date.now() + timeoutMs;
  let last;
  do {
    const { status, json } = await fleet.probe("read", [key]);
    assert.equal(status, 200, JSON.stringify(json));
    last = json[key];
    if (last && ready(last)) return last;
    await new Promise((r) => setTimeout(r, 20));
  } while (Date.now() < until);
  assert.fail(`no record for ${key} as expected within ${timeoutMs} ms; last: ${JSON.stringify(last)}\n${fleet.log()}`);
}

async function until(cond, what, log, timeoutMs = 5_000) {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${timeoutMs} ms\n${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const keyOf = (mock) => `${mock.url} ${MODEL}`;

describe("shared health through a Durable Object (workerd, Miniflare)", () => {
  test("wrangler's conditions resolve llm-retry/health/durable-object to its own module, which loads no wasm; no runtime entry carries it", () => {
    assert.equal(HEALTH_MODULE, join(PKG_DIR, "health-durable-object.js"));
    const source = readFileSync(HEALTH_MODULE, "utf8");
    const importsOf = (code) => [...code.matchAll(/^\s*import\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]);
    assert.deepEqual(importsOf(source), ["cloudflare:workers", "./health-pace.js"], "imports only the Workers runtime module and the bucket");
    const pace = readFileSync(join(PKG_DIR, "health-pace.js"), "utf8");
    assert.deepEqual(importsOf(pace), []);
    for (const code of [source, pace]) assert.doesNotMatch(code, /\.wasm|llm_retry/);
    for (const entry of ["browser.js", "node.js", "deno.js", "workerd.js"]) {
      const code = readFileSync(join(PKG_DIR, entry), "utf8");
      assert.doesNotMatch(code, /HealthObject|durableObjectHealthStore|cloudflare:workers/, entry);
    }
    const types = resolveSubpath(PKG_DIR, SUBPATH, ["types"]);
    assert.match(readFileSync(types, "utf8"), /export function durableObjectHealthStore/);
  });

  test("(a) after instance a meets the primary's outage, b and c skip it without a request and are served by the fallback", T, async (t) => {
    const { primary, backup } = await providers(t, [{ status: 503 }]);
    const fleet = startFleet({ primary: primary.url, backup: backup.url });
    t.after(() => fleet.dispose());

    const a = await fleet.call("a");
    assert.equal(a.status, 200, `${a.text}\n${fleet.log()}`);
    assert.equal(a.model, "backup-model", "a was served by the fallback");
    // failureThreshold 3: a's breaker opened after its third 503 and the call moved on.
    assert.equal(primary.requests.length, 3, "a met the outage: three 503s");
    const record = await recordOnce(fleet, keyOf(primary), (r) => r.openedAt > 0);
    assert.ok(record.openUntil >= record.openedAt + 10_000 && record.openUntil > Date.now(), `opened for the cooldown (10 s): ${JSON.stringify(record)}`);
    assert.equal(record.closedAt, 0);

    for (const name of ["b", "c"]) {
      const r = await fleet.call(name);
      assert.equal(r.status, 200, `${r.text}\n${fleet.log()}`);
      assert.equal(r.model, "backup-model", `${name} was served by the fallback`);
    }
    await new Promise((r) => setTimeout(r, 30)); // a stray request would land by now
    assert.equal(primary.requests.length, 3, "b and c sent nothing to the route a found down");
    assert.equal(backup.requests.length, 3, "one request each to the fallback");
    assert.equal(backup.requests[1].json?.model, "backup-model");
    assert.doesNotMatch(fleet.log(), /health (read|write) failed/);
  });

  test("(a) an instance already running learns of the outage at its next read (refreshMs), in a later request", T, async (t) => {
    const { primary, backup } = await providers(t, [{ status: 200 }]);
    const fleet = startFleet({ primary: primary.url, backup: backup.url, instances: ["a", "b"] });
    t.after(() => fleet.dispose());

    const before = await fleet.call("b"); // b's first request: its first read finds nothing
    assert.equal(before.model, MODEL, `${before.text}\n${fleet.log()}`);
    primary.setScript([{ status: 503 }]);
    assert.equal((await fleet.call("a")).model, "backup-model");
    assert.equal(primary.requests.length, 4, "b's 200, then a's three 503s");
    await recordOnce(fleet, keyOf(primary), (r) => r.openUntil > Date.now());

    // b's client outlives its requests: past refreshMs (1 s), a later request of b reads again.
    await new Promise((r) => setTimeout(r, 1_100));
    const next = await fleet.call("b"); // starts b's read; the call does not wait for it
    assert.equal(next.model, "backup-model", `${next.text}\n${fleet.log()}`);
    assert.ok(primary.requests.length <= 5, `b sent at most the one request its read was not yet back for (${primary.requests.length - 4})`);
    const sent = primary.requests.length;
    const last = await fleet.call("b");
    assert.equal(last.model, "backup-model");
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(primary.requests.length, sent, "then b skips the route without a request");
    assert.doesNotMatch(fleet.log(), /health (read|write) failed/);
  });

  test("(b) a 429 with Retry-After: 30 seen by a pauses the route for b", T, async (t) => {
    const { primary, backup } = await providers(t, [{ status: 429, headers: { "retry-after": "30" } }, { status: 200 }], "error");
    const fleet = startFleet({ primary: primary.url, backup: backup.url, instances: ["a", "b"] });
    t.after(() => fleet.dispose());

    const a = await fleet.call("a");
    assert.equal(a.status, 200, `${a.text}\n${fleet.log()}`);
    assert.equal(a.model, "backup-model", "a's 429 asked for 30 s: the fallback served");
    assert.equal(primary.requests.length, 1);
    const record = await recordOnce(fleet, keyOf(primary), (r) => r.cooledUntil > 0);
    const left = record.cooledUntil - Date.now();
    assert.ok(left > 25_000 && left <= 33_100, `cooled for the hinted 30 s (+ ≤ 10 % jitter): ${left} ms left`);
    assert.equal(record.openedAt, 0, "a rate limit does not open the breaker");

    const b = await fleet.call("b");
    assert.equal(b.status, 200, `${b.text}\n${fleet.log()}`);
    assert.equal(b.model, "backup-model", "b was served by the fallback");
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(primary.requests.length, 1, "only a's request met the 429; b did not send one");
    assert.equal(backup.requests.length, 2);
  });

  test("(c) the object merges per field by max, and a restarted object keeps its records", T, async (t) => {
    const { primary, backup } = await providers(t, [{ status: 200 }], "error");
    const persist = mkdtempSync(join(tmpdir(), "llm-retry-health-do-"));
    t.after(() => rmSync(persist, { recursive: true, force: true }));
    const key = keyOf(primary);
    const now = Date.now();
    const opened = { openedAt: now, openUntil: now + 60_000, closedAt: now - 4_000, cooledUntil: 0 };
    const older = { openedAt: now - 5_000, openUntil: now + 1_000, closedAt: now - 5_000, cooledUntil: now + 2_000 };
    const merged = { ...opened, cooledUntil: now + 2_000 };

    const first = startFleet({ primary: primary.url, backup: backup.url, instances: ["a"], persist });
    try {
      assert.deepEqual(await first.probe("write", { [key]: opened }), { status: 200, json: null });
      assert.deepEqual(await first.probe("write", { [key]: older, other: { openedAt: 7, openUntil: 9, closedAt: 0, cooledUntil: 0 } }), { status: 200, json: null });
      assert.deepEqual((await first.probe("read", [key, "unknown"])).json, { [key]: merged }, "no field lowered; unknown keys left out");
      // A batch with a bad key is refused whole, and told to the writer.
      const bad = await first.probe("write", { [key]: { ...opened, cooledUntil: now + 9_000 }, ["x".repeat(2_000)]: opened });
      assert.equal(bad.status, 500);
      assert.equal(bad.json.name, "TypeError");
      assert.deepEqual((await first.probe("read", [key])).json, { [key]: merged }, "nothing of the refused batch applied");
    } finally {
      await first.dispose();
    }

    // A new workerd process: the object starts from its storage.
    const second = startFleet({ primary: primary.url, backup: backup.url, instances: ["a", "b"], persist });
    t.after(() => second.dispose());
    assert.deepEqual((await second.probe("read", [key, "other"])).json, { [key]: merged, other: { openedAt: 7, openUntil: 9, closedAt: 0, cooledUntil: 0 } });
    // What a user notices: the route stored as open is still skipped after the restart.
    const b = await second.call("b");
    assert.equal(b.status, 200, `${b.text}\n${second.log()}`);
    assert.equal(b.model, "backup-model");
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(primary.requests.length, 0, "the primary, open until a minute from now, got no request");
  });

  test("the object forgets records a day stale once it holds 1,024, in its storage too, and keeps the rest", T, async (t) => {
    const { primary, backup } = await providers(t, [{ status: 200 }], "error");
    const persist = mkdtempSync(join(tmpdir(), "llm-retry-health-do-"));
    t.after(() => rmSync(persist, { recursive: true, force: true }));
    const now = Date.now();
    const day = 86_400_000;
    const stale = { openedAt: now - 3 * day, openUntil: now - 3 * day + 60_000, closedAt: now - 2 * day, cooledUntil: 0 };
    const open = { openedAt: now - 2 * day, openUntil: now + 60_000, closedAt: 0, cooledUntil: 0 };
    const staleKeys = Array.from({ length: 1_100 }, (_, i) => `stale-${i}`);
    const first = startFleet({ primary: primary.url, backup: backup.url, instances: ["a"], persist });
    try {
      assert.deepEqual(await first.probe("write", Object.fromEntries(staleKeys.slice(0, 1_000).map((k) => [k, stale]))), { status: 200, json: null });
      assert.equal(Object.keys((await first.probe("read", staleKeys)).json).length, 1_000, "below 1,024 records nothing is swept");
      const second = { open, ...Object.fromEntries(staleKeys.slice(1_000).map((k) => [k, stale])) };
      assert.deepEqual(await first.probe("write", second), { status: 200, json: null });
      assert.deepEqual((await first.probe("read", [...staleKeys, "open"])).json, { open }, "at 1,024 every record a day stale is forgotten");
    } finally {
      await first.dispose();
    }
    // A new workerd process: the object starts from its storage, which the sweep emptied too.
    const again = startFleet({ primary: primary.url, backup: backup.url, instances: ["a"], persist });
    t.after(() => again.dispose());
    assert.deepEqual((await again.probe("read", [...staleKeys, "open"])).json, { open });
  });

  // A read the client started in a request that ends before the read comes back may never settle
  // in workerd (its I/O belonged to that request): the client gives such a read up after
  // health.timeoutMs and starts another, so it still learns of the others.
  test("an instance whose first read outlived its request still reads again later", T, async (t) => {
    const { primary, backup } = await providers(t, [{ status: 200 }]);
    const fleet = startFleet({
      primary: primary.url,
      backup: backup.url,
      instances: ["a", "b"],
      className: "SlowFirstReadHealth",
      owner: "faulty",
      ownerScript: join(here, "fixtures", "health-faulty.mjs"),
    });
    t.after(() => fleet.dispose());

    // b's first read takes 300 ms: b's call waits 50 ms (firstReadMs) for it, then is served, and
    // b's request ends with the read in flight.
    assert.equal((await fleet.call("b")).model, MODEL);
    primary.setScript([{ status: 503 }]);
    assert.equal((await fleet.call("a")).model, "backup-model");
    await recordOnce(fleet, keyOf(primary), (r) => r.openUntil > Date.now());
    const sent = primary.requests.length;
    await new Promise((r) => setTimeout(r, 1_100));
    assert.equal((await fleet.call("b")).model, "backup-model");
    assert.ok(primary.requests.length - sent <= 1, `b sent ${primary.requests.length - sent} requests to the route a found down`);
  });

  test("(e) instances sharing the object keep together under the provider's rate limit; each alone sends at the whole rate", { timeout: 90_000 }, async (t) => {
    /** Workers with one route and no fallback (fixtures/health-paced-worker.mjs). Each instance
     * makes one call in turn (learning the limit from its headers), then 90 calls go at 60 a
     * second, dealt round-robin; the provider takes 20 a second (burst 5). */
    const source = readFileSync(join(here, "fixtures", "health-paced-worker.mjs"), "utf8");
    const run = async (extra) => {
      const primary = await mockFor(t, { limit: { rate: 20, burst: 5 } });
      const fleet = startFleet({ primary: primary.url, backup: "http://127.0.0.1:9", source, ...extra });
      t.after(() => fleet.dispose());
      for (const name of ["a", "b", "c"]) assert.equal((await fleet.call(name)).model, MODEL, fleet.log());
      await new Promise((r) => setTimeout(r, 300)); // the bucket refills
      const warm = primary.requests.length;
      const started = performance.now();
      const calls = [];
      for (let i = 0; i < 90; i++) {
        calls.push(fleet.call("abc"[i % 3]));
        if (i % 3 === 2) await new Promise((r) => setTimeout(r, 50));
      }
      const results = await Promise.all(calls);
      const seconds = (performance.now() - started) / 1000;
      const answered = primary.requests.slice(warm).map((r) => r.step.status);
      return {
        served: results.filter((r) => r.status === 200).length,
        primary: answered.filter((s) => s === 200).length,
        rejected: answered.filter((s) => s === 429).length,
        rate: +(answered.filter((s) => s === 200).length / seconds).toFixed(1),
        log: fleet.log(),
      };
    };
    const shared = await run({});
    const alone = await run({ className: "UnpacedHealth", owner: "faulty", ownerScript: join(here, "fixtures", "health-faulty.mjs") });
    t.diagnostic(`shared: ${JSON.stringify({ ...shared, log: undefined })}; alone: ${JSON.stringify({ ...alone, log: undefined })}`);
    assert.equal(shared.served, 90, shared.log);
    // Shared, a 429 is met only at the start, while an instance has not yet found the route busy
    // (over half of the provider's burst used) and sends on its own.
    assert.ok(shared.rejected <= 8, `shared: ${shared.rejected} requests met a 429`);
    assert.ok(alone.rejected >= Math.max(3 * shared.rejected, 15), `alone: ${alone.rejected} 429s`);
    // Keeping together costs next to no throughput: the provider served the shared fleet about as
    // fast as the instances alone, whose 429s each hold a call for a second (a fleet paced too
    // slowly, at half the rate say, fails this). Measured against the run beside it rather than a
    // fixed rate: a CI machine running other suites at once slows both (one such run served the
    // shared fleet 11.9 a second and the lone instances 9.8; another 14.3 and 13.9; alone, here,
    // 16.5–18.3 against 10.6–14).
    assert.ok(shared.rate >= 0.8 * alone.rate, `shared: the provider served ${shared.rate} a second, alone ${alone.rate}`);
    assert.doesNotMatch(shared.log, /health \w+ failed/);
    assert.match(alone.log, /llm-retry health pace failed: Error: health object: does not pace/);
  });

  for (const [className, what, told] of [
    ["ThrowingHealth", "throws on every read and write", /llm-retry health write failed: Error: health object: write failed/],
    ["UnreachableHealth", "cannot start (unreachable)", /llm-retry health write failed: Error: health object: cannot start/],
  ]) {
    test(`(d) an object that ${what}: the calls still succeed; onError is told`, T, async (t) => {
      const { primary, backup } = await providers(t, [{ status: 503 }]);
      const fleet = startFleet({
        primary: primary.url,
        backup: backup.url,
        instances: ["a", "b"],
        className,
        owner: "faulty",
        ownerScript: join(here, "fixtures", "health-faulty.mjs"),
      });
      t.after(() => fleet.dispose());

      for (const name of ["a", "b"]) {
        const started = Date.now();
        const r = await fleet.call(name);
        assert.equal(r.status, 200, `${r.text}\n${fleet.log()}`);
        assert.equal(r.model, "backup-model", `${name} was served by the fallback`);
        assert.ok(Date.now() - started < 10_000, "not held by the failing object");
      }
      // Nothing shared: each instance met the outage itself.
      assert.equal(primary.requests.length, 6, "three 503s for a, three for b");
      assert.equal(backup.requests.length, 2);
      await until(() => (fleet.log().match(/llm-retry health write failed/g) ?? []).length >= 2, "both instances' writes failed and were told", fleet.log);
      assert.match(fleet.log(), /llm-retry health read failed: Error: health object: (read failed|cannot start)/);
      assert.match(fleet.log(), told);
    });
  }
});
