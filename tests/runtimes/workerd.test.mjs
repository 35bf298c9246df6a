// llm-retry in workerd, the Cloudflare Workers runtime, through Miniflare (pinned; newer releases
// need Node 22). The Worker's `import ... from "llm-retry"` is resolved as wrangler would, through
// the "workerd" export condition, to workerd.js — the entry that does
// `import wasm from "./llm_retry_bg.wasm"; initSync({ module: wasm })` (see runtimes.mjs).

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { scenarioTests, mockFor, T } from "./harness.mjs";
import { here, PKG_DIR, WRANGLER_CONDITIONS, resolveExport, startWorker, loadError } from "./runtimes.mjs";

const fixture = (name) => join(here, "fixtures", name);

describe("workerd (Miniflare)", () => {
  test("wrangler's conditions select the package's workerd.js entry", () => {
    assert.equal(resolveExport(PKG_DIR, WRANGLER_CONDITIONS), join(PKG_DIR, "workerd.js"));
  });

  describe("scenarios in a Worker's fetch handler", () => {
    let worker;
    before(async () => {
      worker = startWorker({ scriptPath: fixture("worker.mjs") });
      const err = await loadError(worker.mf);
      assert.equal(err, null, `worker.mjs failed to load: ${err?.message}\n${worker.log()}`);
    });
    after(() => worker?.dispose());

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
      worker = startWorker({ scriptPath: fixture("worker-global.mjs") });
    });
    after(() => worker?.dispose());

    test("control: this check does catch a global-scope violation", T, async () => {
      const control = startWorker({
        scriptPath: fixture("control.mjs"),
        script: "crypto.getRandomValues(new Uint8Array(4));\nexport default { fetch: () => new Response() };\n",
      });
      const err = await loadError(control.mf);
      await control.dispose();
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
