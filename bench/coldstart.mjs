// Cold start: the time from `import` of the package to the first call's `fetch` (target < 5 ms).
//   Node: in fresh processes, timed inside each: `await import(pkg/node.js)`, createRetryFetch,
//         and the first call up to the moment its transport is called; against the import of an
//         empty module file in a fresh process (Node's loader starting, which any package's import
//         pays), so that what the package adds is printed as for workerd. Median of RUNS.
//   workerd (Miniflare): a Worker's clock stands still between I/O, so it is timed from outside:
//         a fresh Miniflare whose Worker imports the package and makes one call through it (a stub
//         transport), against the same Worker calling the stub without it, and one that only
//         imports the package, in turn; the differences of the medians (time to the first
//         response) are what the package adds: compiling and instantiating the wasm, and the
//         first call. Median of WORKER_RUNS.
// Run: make bench, or node bench/coldstart.mjs after make package. RUNS (default 21),
// WORKER_RUNS (default 51; 0 times Node alone), PKG=dir. (With 9 and 25, runs within one hour here read 6.3–9.7 ms
// in Node and 5.8–13.2 ms in workerd; two in a row with these, 7.2 and 6.7, 9.2 and 9.4 ms. ~18 s.)
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Miniflare } from "miniflare";

const RUNS = Number(process.env.RUNS ?? 21);
// A Worker starts in ~100 ms, give or take 5: more runs, to split the package's few ms.
const WORKER_RUNS = Number(process.env.WORKER_RUNS ?? 51);
const here = new URL(".", import.meta.url).pathname;
const PKG = resolve(process.env.PKG ?? join(here, "../pkg"));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Node.
const child = (touch) => `
${touch ? "Response, Request, Headers;" : ""}
const t0 = performance.now();
const m = await import(${JSON.stringify(pathToFileURL(join(PKG, "node.js")).href)});
const t1 = performance.now();
let t3;
const f = m.createRetryFetch({ fetch: async () => { t3 ??= performance.now(); return new Response("{}"); } });
const t2 = performance.now();
await f("http://127.0.0.1:9/v1/chat/completions", { method: "POST", body: '{"model":"m"}' });
console.log(JSON.stringify({ imported: t1 - t0, created: t2 - t1, firstFetch: t3 - t0 }));
`;
// Node loads its fetch (undici: Request, Response, Headers) on first use, ~30 ms here; a process
// that fetches pays it with or without llm-retry, so it is timed apart: touched first, or not.
// And the first import of an empty module file: Node's module loader starting up, which any
// package's import pays in a process that imported nothing before (a file, as the package is: a
// `data:` URL skips resolving and reading one, ~2 ms of it here).
const dir = mkdtempSync(join(tmpdir(), "llm-retry-cold-"));
writeFileSync(join(dir, "empty.mjs"), "export {};\n");
const empty = `
const t0 = performance.now();
await import(${JSON.stringify(pathToFileURL(join(dir, "empty.mjs")).href)});
console.log(JSON.stringify({ imported: performance.now() - t0 }));
`;
// Node 22.1 and later keep the bytecode of the modules a process compiles in a directory when told
// to (NODE_COMPILE_CACHE, or `module.enableCompileCache()` in the application), and the next
// process starts from it: timed apart, from a cache one process filled first. (The wasm is not in
// it: Node caches no WebAssembly compilation.)
const [major, minor] = process.versions.node.split(".").map(Number);
const compileCache = major > 22 || (major === 22 && minor >= 1) ? join(dir, "compile-cache") : undefined;
const kinds = ["touched", "cold", "empty", ...(compileCache ? ["cached"] : [])];
const node = Object.fromEntries(kinds.map((k) => [k, []]));
const spawn = (k, script) =>
  spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: k === "cached" ? { ...process.env, NODE_COMPILE_CACHE: compileCache } : process.env,
  });
if (compileCache) spawn("cached", child(true));
for (let i = 0; i < RUNS; i++) {
  for (const k of kinds) {
    const script = k === "empty" ? empty : child(k !== "cold");
    const r = spawn(k, script);
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(r.stderr);
    }
    node[k].push(JSON.parse(r.stdout));
  }
}
const mv = (k, f) => median(node[k].map((r) => r[f]));
const m = (k, f) => mv(k, f).toFixed(2);
console.log(`cold start, median of ${RUNS} fresh processes${WORKER_RUNS ? ` / ${WORKER_RUNS} Workers` : ""}`);
console.log(`  Node ${process.version}, its fetch already loaded: import ${m("touched", "imported")} ms, createRetryFetch ${m("touched", "created")} ms; ` +
  `import → first call's fetch ${m("touched", "firstFetch")} ms; ` +
  `an empty module file's import in a fresh process (Node's loader starting) ${m("empty", "imported")} ms: ` +
  `the package adds ${(mv("touched", "firstFetch") - mv("empty", "imported")).toFixed(2)} ms (target < 5 ms)`);
console.log(`  Node, the process's first use of fetch's classes (undici loads): import → first call's fetch ${m("cold", "firstFetch")} ms`);
if (compileCache) {
  console.log(`  Node with its compile cache (NODE_COMPILE_CACHE, filled by one process before): import ${m("cached", "imported")} ms, ` +
    `createRetryFetch ${m("cached", "created")} ms; the package adds ${(mv("cached", "firstFetch") - mv("empty", "imported")).toFixed(2)} ms`);
}

// workerd. The Worker's modules are handed to Miniflare as a list, as a deploy uploads them: given
// a root module alone, Miniflare would find the imports by parsing them in this process, which no
// deployed Worker pays (it added ~50 ms here).
const stub = `const stub = async () => new Response("{}");`;
const call = `("http://127.0.0.1:9/v1/chat/completions", { method: "POST", body: '{"model":"m"}' })`;
const scripts = {
  // The package's modules loaded (the wasm compiled, the glue instantiated), no call made.
  loaded: `import * as pkg from "./workerd.js";\n${stub}
export default { async fetch() { globalThis.pkg = pkg; return stub${call}; } };\n`,
  with: `import { createRetryFetch } from "./workerd.js";\n${stub}
export default { async fetch() { const f = createRetryFetch({ fetch: stub }); return f${call}; } };\n`,
  without: `${stub}\nexport default { async fetch() { return stub${call}; } };\n`,
};
const packageModules = [
  { type: "ESModule", path: join(dir, "workerd.js"), contents: readFileSync(join(PKG, "workerd.js"), "utf8") },
  { type: "CompiledWasm", path: join(dir, "llm_retry_bg.wasm"), contents: readFileSync(join(PKG, "llm_retry_bg.wasm")) },
];
async function worker(script) {
  const modules = [{ type: "ESModule", path: join(dir, "main.mjs"), contents: scripts[script] }];
  if (script !== "without") modules.push(...packageModules);
  const t0 = performance.now();
  const mf = new Miniflare({ modules, modulesRoot: dir, compatibilityDate: "2025-09-01" });
  const res = await mf.dispatchFetch("http://worker.test/");
  await res.text();
  const first = performance.now() - t0;
  const t1 = performance.now();
  await (await mf.dispatchFetch("http://worker.test/")).text();
  const second = performance.now() - t1;
  await mf.dispose();
  return { first, second };
}
const w = { with: [], loaded: [], without: [] };
if (WORKER_RUNS === 0) {
  // Node alone (make bench's run on another Node: workerd is the same either way).
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
try {
  await worker("without"); // warm up workerd's own start
  for (let i = 0; i < WORKER_RUNS; i++) {
    const order = Object.keys(w);
    for (const k of i % 2 ? order.reverse() : order) w[k].push(await worker(k));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const wm = (k, f) => median(w[k].map((r) => r[f]));
const added = wm("with", "first") - wm("without", "first");
console.log(`  workerd (Miniflare): a new Worker to its first response ${wm("with", "first").toFixed(1)} ms with the package, ` +
  `${wm("without", "first").toFixed(1)} ms without: the package adds ${added.toFixed(1)} ms (target < 5 ms), of which ` +
  `${(wm("loaded", "first") - wm("without", "first")).toFixed(1)} ms loading it (the wasm compiled, instantiated) and ` +
  `${(wm("with", "first") - wm("loaded", "first")).toFixed(1)} ms the first createRetryFetch and call; ` +
  `a second request ${wm("with", "second").toFixed(2)} ms vs ${wm("without", "second").toFixed(2)} ms`);
