// The package through a bundler, as a web app uses it: a Vite production build of a page that
// imports "llm-retry" (the "browser" condition), served statically and run in Chromium. Proves
// the bundler keeps the entry's wasm initialisation (package.json `sideEffects`), emits the .wasm
// as an asset from `new URL(..., import.meta.url)`, and handles the entry's top-level await.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "vite";
import { T, mockFor } from "./harness.mjs";
import { here, startStaticServer, launchChromium } from "./runtimes.mjs";

const app = join(here, ".vite-app");

test("a Vite build of a page importing llm-retry retries a 503 and serves the 200", T, async (t) => {
  rmSync(app, { recursive: true, force: true });
  mkdirSync(app, { recursive: true });
  t.after(() => rmSync(app, { recursive: true, force: true }));
  writeFileSync(join(app, "index.html"), `<!doctype html><link rel="icon" href="data:,"><title>pending</title><script type="module" src="./main.js"></script>`);
  writeFileSync(
    join(app, "main.js"),
    `import { createRetryFetch, retryReport } from "llm-retry";
const mock = new URLSearchParams(location.search).get("mock");
const retryFetch = createRetryFetch({ backoff: { initialMs: 20, maxMs: 50 } });
const res = await retryFetch(mock + "/v1/chat/completions", { method: "POST", body: JSON.stringify({ model: "m", messages: [] }) });
document.title = JSON.stringify({ status: res.status, attempts: retryReport(res).attempts.length });
`,
  );
  await build({ root: app, logLevel: "silent", build: { outDir: join(app, "dist"), emptyOutDir: true } });
  const assets = readdirSync(join(app, "dist", "assets"));
  assert.ok(assets.some((f) => f.endsWith(".wasm")), `the .wasm is emitted as an asset: ${assets}`);

  const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], cors: true });
  const site = await startStaticServer({ roots: { "/": join(app, "dist") } });
  t.after(() => site.close());
  const browser = await launchChromium();
  t.after(() => browser.close());
  browser.allowStatusLogsFrom(mock.url);
  await browser.page.goto(`${site.url}/index.html?mock=${encodeURIComponent(mock.url)}`);
  await browser.page.waitForFunction(() => document.title !== "pending", null, { timeout: 10_000 }).catch((e) => assert.fail(`${e.message}\n${browser.problems.join("\n")}\nrequests: ${mock.requests.length}`));
  assert.deepEqual(JSON.parse(await browser.page.title()), { status: 200, attempts: 2 });
  assert.equal(mock.requests.length, 2);
  assert.deepEqual(browser.problems, []);
});
