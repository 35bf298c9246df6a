// llm-retry in headless Chromium (the system /usr/bin/chromium, driven by playwright-core). A
// static server on 127.0.0.1 serves fixtures/browser.html, which loads the installed package
// the way a page without a bundler does — an import map sending "llm-retry" to /pkg/browser.js —
// and runs the cross-runtime scenarios against mock providers that answer CORS.
//
// Browsers only let a script read the headers a cross-origin server lists in
// Access-Control-Expose-Headers: with `cors: "expose"` the library sees retry-after-ms and waits
// for it; with plain `cors: true` the hint is invisible and the retry happens on backoff alone.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { scenarioTests, mockFor, gaps, T, SLACK } from "./harness.mjs";
import { here, PKG_DIR, startStaticServer, launchChromium } from "./runtimes.mjs";

describe("Chromium (headless, playwright-core)", () => {
  let site, browser;

  before(async () => {
    site = await startStaticServer({
      pages: { "/": readFileSync(join(here, "fixtures", "browser.html"), "utf8") },
      roots: { "/pkg/": PKG_DIR, "/fixtures/": join(here, "fixtures") },
    });
    browser = await launchChromium();
    await browser.page.goto(site.url + "/");
    await browser.page.waitForFunction(() => document.title === "ready" && typeof window.runScenario === "function", null, {
      timeout: 10_000,
    });
  });

  after(async () => {
    await browser?.close();
    await site?.close();
  });

  async function runInPage(name, urls) {
    for (const u of Object.values(urls)) if (u) browser.allowStatusLogsFrom(u);
    return browser.page.evaluate(([n, u]) => window.runScenario(n, u), [name, urls]);
  }

  test("the page loaded the package through the import map", T, async () => {
    const loaded = await browser.page.evaluate(() =>
      performance.getEntriesByType("resource").map((e) => new URL(e.name).pathname),
    );
    assert.ok(loaded.includes("/pkg/browser.js"), `import map used: ${loaded}`);
    assert.ok(loaded.includes("/pkg/llm_retry_bg.wasm"), `wasm fetched next to browser.js: ${loaded}`);
  });

  describe("scenarios (mocks expose the hint headers: cors \"expose\")", () => {
    scenarioTests(runInPage, { cors: "expose" });
  });

  describe("429 + retry-after-ms: 300, with and without Access-Control-Expose-Headers", () => {
    const script = [{ status: 429, headers: { "retry-after-ms": "300" } }, { status: 200 }];

    test("cors \"expose\": the hint is readable → gap ≥ 300 ms, wait set by retry-after-ms", T, async (t) => {
      const mock = await mockFor(t, { script, cors: "expose", exhausted: "error" });
      const r = await runInPage("retry-after", { primary: mock.url });
      assert.equal(r.error, null, JSON.stringify(r.error));
      assert.equal(r.status, 200);
      assert.equal(mock.requests.length, 2);
      const [gap] = gaps(mock.requests);
      assert.ok(gap >= 300 - SLACK, `gap ${gap.toFixed(1)} ms honours the exposed retry-after-ms`);
      const retry = r.events.find((e) => e.type === "retry");
      assert.equal(retry.wait, "retry-after-ms");
    });

    test("plain cors: the hint is invisible to the page → retried on backoff alone (20 ms, gap < 300 ms)", T, async (t) => {
      const mock = await mockFor(t, { script, cors: true, exhausted: "error" });
      const r = await runInPage("retry-after", { primary: mock.url });
      assert.equal(r.error, null, JSON.stringify(r.error));
      assert.equal(r.status, 200, "the retry still succeeds");
      assert.equal(mock.requests.length, 2);
      assert.equal(mock.requests[0].step.headers["retry-after-ms"], "300", "the server did send the hint");
      const [gap] = gaps(mock.requests);
      assert.ok(gap < 300, `gap ${gap.toFixed(1)} ms: the unexposed hint was not honoured`);
      const retry = r.events.find((e) => e.type === "retry");
      assert.equal(retry.wait, "backoff", `the wait came from the backoff: ${JSON.stringify(retry)}`);
      assert.equal(retry.hint, undefined);
    });
  });

  test("a page-relative URL resolves against the page: the transport gets it absolute, 503 then 200 → 200", T, async () => {
    const r = await browser.page.evaluate(async () => {
      const { createRetryFetch, retryReport } = await import("llm-retry");
      const urls = [];
      const transport = async (url) => {
        urls.push(url);
        return new Response("{}", { status: urls.length === 1 ? 503 : 200 });
      };
      const retryFetch = createRetryFetch({ fetch: transport, backoff: { initialMs: 1, maxMs: 5 } });
      const res = await retryFetch("/v1/chat/completions", { method: "POST", body: "{}" });
      return { status: res.status, urls, attempts: retryReport(res).attempts.length };
    });
    assert.deepEqual(r, { status: 200, urls: Array(2).fill(`${site.url}/v1/chat/completions`), attempts: 2 });
  });

  test("no console errors or warnings, no uncaught page errors", () => {
    assert.deepEqual(browser.problems, []);
  });
});
