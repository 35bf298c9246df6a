// How each suite starts its runtime: Deno (a child process), workerd (Miniflare) and headless
// Chromium (playwright-core, a static server for the page). Shared by the per-runtime suites and
// readme.test.mjs. Everything listens on 127.0.0.1 with OS-chosen ports and is stopped by the caller.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import http from "node:http";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { chromium } from "playwright-core";

export const here = dirname(fileURLToPath(import.meta.url));
export const PKG_DIR = join(here, "node_modules", "llm-retry");

/** The tarball prepare.mjs packed and installed (in .pack/). */
export function packedTarball() {
  const dir = join(here, ".pack");
  const found = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".tgz")) : [];
  assert.equal(found.length, 1, `expected one tarball in ${dir} (run node prepare.mjs), found ${found}`);
  return join(dir, found[0]);
}

// ---------------------------------------------------------------------------------------- Deno

const DENO = join(here, "node_modules", ".bin", process.platform === "win32" ? "deno.cmd" : "deno");
/** "manual": use ./node_modules as npm left it (no deno-managed npm cache, no registry access). */
export const DENO_RESOLVE = ["--node-modules-dir=manual"];
/** Network to loopback only; reads only of the package (its entry reads the .wasm from a file URL). */
export const DENO_PERMS = ["--no-prompt", "--allow-net=127.0.0.1"];

/** Runs `command` with `args` (from this directory unless `cwd`); resolves { code, stdout, stderr }. */
export function run(command, args, { cwd = here, env = {}, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")}: no exit within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs deno with `args` from this directory; resolves { code, stdout, stderr }. */
export const deno = (args, { env = {}, timeoutMs } = {}) =>
  run(DENO, args, { env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env }, timeoutMs });

/** How Miniflare loads a Worker's modules from this directory: the package's .js as ES modules,
 * its .wasm as a CompiledWasm module (what wrangler uploads). */
export const WORKER_MODULES = {
  modules: true,
  modulesRoot: here,
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  compatibilityDate: "2025-09-01",
};

/**
 * A loopback npm registry serving one package, from a tarball made by `npm pack`: the packument
 * at /<name> and the tarball under /<name>/-/. Enough for `deno run` with NPM_CONFIG_REGISTRY.
 */
export async function startTarballRegistry(tarballPath) {
  const tgz = readFileSync(tarballPath);
  const manifest = JSON.parse(execFileSync("tar", ["-xOzf", tarballPath, "package/package.json"], { encoding: "utf8" }));
  const file = `${manifest.name}-${manifest.version}.tgz`;
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url);
    const base = `http://127.0.0.1:${server.address().port}`;
    if (req.url === `/${manifest.name}`) {
      const dist = {
        tarball: `${base}/${manifest.name}/-/${file}`,
        shasum: createHash("sha1").update(tgz).digest("hex"),
        integrity: `sha512-${createHash("sha512").update(tgz).digest("base64")}`,
      };
      const packument = {
        name: manifest.name,
        "dist-tags": { latest: manifest.version },
        versions: { [manifest.version]: { ...manifest, dist } },
      };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(packument));
    } else if (req.url === `/${manifest.name}/-/${file}`) {
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(tgz);
    } else {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
    }
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    requests,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
  };
}

// -------------------------------------------------------------------------------------- workerd

/** What wrangler's esbuild step enables for a Worker bundle. */
export const WRANGLER_CONDITIONS = ["workerd", "worker", "browser", "import", "default"];

/** Resolves a package's "." export for a set of conditions (first matching key wins, as in Node). */
export function resolveExport(pkgDir, conditions) {
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
 * Miniflare running the module Worker at `scriptPath` (or the source `script`, named as if it
 * were at scriptPath). Miniflare does not resolve bare specifiers, so this does the one step
 * wrangler's bundler would: `from "llm-retry"` is pointed at the entry the "workerd" condition
 * selects. The rest — the package's .js modules and the .wasm as a CompiledWasm module — Miniflare
 * loads from node_modules/llm-retry unchanged. workerd's stdout/stderr are captured into `log()`.
 */
export function startWorker({ scriptPath, script, bindings }) {
  const entry = resolveExport(PKG_DIR, WRANGLER_CONDITIONS);
  const spec = relative(dirname(scriptPath), entry).split(sep).join("/");
  const source = script ?? readFileSync(scriptPath, "utf8");
  let output = "";
  const mf = new Miniflare({
    ...WORKER_MODULES,
    script: source.replace(/from "llm-retry"/g, `from "${spec}"`),
    scriptPath,
    bindings,
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (d) => (output += d));
      stderr.on("data", (d) => (output += d));
    },
  });
  return { mf, log: () => output, dispose: () => mf.dispose().catch(() => {}) };
}

/** Awaits `mf.ready`; resolves to the startup error, or null when the Worker loaded. */
export async function loadError(mf) {
  try {
    await mf.ready;
    return null;
  } catch (e) {
    return e;
  }
}

// ------------------------------------------------------------------------------------- Chromium

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
};

/**
 * A read-only static server on 127.0.0.1:0. `pages` maps exact paths to HTML strings; `roots`
 * maps URL prefixes ("/pkg/") to directories served under them.
 */
export async function startStaticServer({ pages = {}, roots = {} }) {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path in pages) {
      res.writeHead(200, { "content-type": MIME[".html"], "cache-control": "no-store" }).end(pages[path]);
      return;
    }
    let file = null;
    for (const [prefix, dir] of Object.entries(roots)) {
      if (!file && path.startsWith(prefix)) {
        const candidate = join(dir, path.slice(prefix.length));
        if (candidate.startsWith(dir + sep)) file = candidate;
      }
    }
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
  };
}

// Chromium reports every non-2xx fetch as a console error ("Failed to load resource: the server
// responded with a status of 503 (Service Unavailable)"). For the mock providers' URLs those are
// the scripted statuses, not page problems.
const EXPECTED_NETWORK_LOG = /^Failed to load resource: the server responded with a status of (400|429|503|529) /;

/**
 * Headless Chromium with a fresh profile (--user-data-dir in a temp dir) and one page.
 * `problems` collects console errors/warnings and uncaught page errors, except the network log
 * lines for URLs under an origin passed to `allowStatusLogsFrom`.
 */
export async function launchChromium() {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM=path)`);
  const userDataDir = mkdtempSync(join(tmpdir(), "llm-retry-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  const mockOrigins = new Set();
  page.on("console", (msg) => {
    if (msg.type() !== "error" && msg.type() !== "warning") return;
    const at = msg.location()?.url ?? "";
    if ([...mockOrigins].some((o) => at.startsWith(o + "/")) && EXPECTED_NETWORK_LOG.test(msg.text())) return;
    problems.push(`console.${msg.type()}: ${msg.text()} (${at})`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.stack ?? e}`));
  return {
    page,
    problems,
    allowStatusLogsFrom: (origin) => mockOrigins.add(origin),
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
