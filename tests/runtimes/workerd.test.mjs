// llm-retry in workerd, the Cloudflare Workers runtime, through Miniflare (pinned; newer releases
// need Node 22). Miniflare does not resolve bare specifiers, so this suite does the one step a
// bundler (wrangler) does: resolve "llm-retry" in the installed package's exports map with
// wrangler's conditions — which selects workerd.js, the entry that does
// `import wasm from "./llm_retry_bg.wasm"; initSync({ module: wasm })` — and point the Worker's
// import at that file. Everything else (the .js modules, the .wasm as a CompiledWasm module) is
// loaded by Miniflare from node_modules/llm-retry unchanged.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { scenarioTests, mockFor, T } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const PKG_DIR = join(here, "node_modules", "llm-retry");
// What wrangler's esbuild step enables for a Worker bundle.
const WRANGLER_CONDITIONS = ["workerd", "worker", "browser", "import", "default"];

/** Resolves a package's "." export for a set of conditions (first matching key wins, as in Node). */
function resolveExport(pkgDir, conditions) {
  const { exports } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  let target = exports["."] ?? exports;
  while (target && typeof target === "object") {
    const key = Object.keys(target).find((k) => conditions.includes(k));
    assert.ok(key, `no export condition among ${conditions} in ${JSON.stringify(target)}`);
    target = target[key];
  }
  return join(pkgDir, target);
}

/**
 * A Miniflare running `fixture` (or `script`, named as that fixture), with its `from "llm-retry"`
 * pointed at the resolved entry. workerd's own stdout/stderr are captured into `log()`.
 */
function startWorker(fixture, script) {
  const scriptPath = join(here, "fixtures", fixture);
  const entry = resolveExport(PKG_DIR, WRANGLER_CONDITIONS);
  const spec = relative(dirname(scriptPath), entry).split("\\").join("/");
  const source = script ?? readFileSync(scriptPath, "utf8");
  let output = "";
  const mf = new Miniflare({
    modules: true,
    script: source.replace(/from "llm-retry"/g, `from "${spec}"`),
    scriptPath,
    modulesRoot: here,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2025-09-01",
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (d) => (output += d));
      stderr.on("data", (d) => (output += d));
    },
  });
  return { mf, log: () => output };
}

/** Awaits `mf.ready`; resolves to the startup error, or null when the Worker loaded. */
async function loadError(mf) {
  try {
    await mf.ready;
    return null;
  } catch (e) {
    return e;
  }
}

describe("workerd (Miniflare)", () => {
  test("wrangler's conditions select the package's workerd.js entry", () => {
    assert.equal(resolveExport(PKG_DIR, WRANGLER_CONDITIONS), join(PKG_DIR, "workerd.js"));
  });

  describe("scenarios in a Worker's fetch handler", () => {
    let worker;
    before(async () => {
      worker = startWorker("worker.mjs");
      const err = await loadError(worker.mf);
      assert.equal(err, null, `worker.mjs failed to load: ${err?.message}\n${worker.log()}`);
    });
    after(() => worker?.mf.dispose().catch(() => {}));

    scenarioTests(async (name, urls) => {
      const u = new URL(`http://worker.test/${name}`);
      u.searchParams.set("primary", urls.primary);
      if (urls.backup) u.searchParams.set("backup", urls.backup);
      const res = await worker.mf.dispatchFetch(u);
      const text = await res.text();
      assert.equal(res.status, 200, `worker answered ${res.status}: ${text}\n${worker.log()}`);
      return JSON.parse(text);
    });
  });

  describe("createRetryFetch(...) at the Worker's global scope", () => {
    let worker;
    before(() => {
      worker = startWorker("worker-global.mjs");
    });
    after(() => worker?.mf.dispose().catch(() => {}));

    test("control: this check does catch a global-scope violation", T, async () => {
      const control = startWorker(
        "control.mjs",
        "crypto.getRandomValues(new Uint8Array(4));\nexport default { fetch: () => new Response() };\n",
      );
      const err = await loadError(control.mf);
      await control.mf.dispose().catch(() => {});
      assert.ok(err, "a Worker drawing random numbers at global scope must fail to load");
      assert.match(control.log(), /Disallowed operation called within global scope/);
    });

    test("the module loads (no \"Disallowed operation called within global scope\")", T, async () => {
      const err = await loadError(worker.mf);
      assert.equal(err, null, `worker-global.mjs failed to load: ${err?.message}\n${worker.log()}`);
      assert.doesNotMatch(worker.log(), /Disallowed|Uncaught/);
    });

    test("the global instance serves consecutive requests: 503 then 200, then a plain 200", T, async (t) => {
      const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }, { status: 200 }], exhausted: "error" });
      const target = `${mock.url}/v1/chat/completions`;
      const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say ok" }] });
      const url = `http://worker.test/?target=${encodeURIComponent(target)}`;

      const first = await worker.mf.dispatchFetch(url, { method: "POST", body });
      assert.equal(first.status, 200, `${await first.clone().text()}\n${worker.log()}`);
      assert.equal((await first.json()).choices[0].message.content, "ok");
      assert.equal(mock.requests.length, 2, "retried once inside the first Worker request");

      const second = await worker.mf.dispatchFetch(url, { method: "POST", body });
      assert.equal(second.status, 200, `${await second.clone().text()}\n${worker.log()}`);
      assert.equal((await second.json()).choices[0].message.content, "ok");
      assert.equal(mock.requests.length, 3);
      for (const r of mock.requests) assert.equal(r.json?.model, "gpt-4o-mini");
    });
  });
});
