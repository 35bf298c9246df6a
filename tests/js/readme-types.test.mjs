// The README's JavaScript examples as TypeScript: every ```js block (and the module script of the
// ```html one) is taken from README.md at test time, written to a .ts file next to this one (so
// "llm-retry", "openai" and "@anthropic-ai/sdk" resolve from node_modules here) and checked by
// tsc with `strict` and `skipLibCheck: false` (the package's index.d.ts included), twice:
//   - with the DOM library (lib es2022, dom, dom.iterable), as in a browser or bundler project;
//   - without it (lib es2022, types ["node"] from the pinned @types/node), as in a Node project.
// The page script uses `document`, so it is checked with the DOM library only.
//
// What the examples take from their host is declared, never their own code:
//   - `Deno.env.get` for the Deno example;
//   - a Worker's handler: `export default { ... }` is checked as `{ ... } satisfies WorkerHandler`,
//     as a TypeScript Worker is written, so `request` and `env` have types (a JS object literal
//     gives its method parameters none);
//   - a fragment (a block without imports, continuing the one before it: the Workers state lines)
//     gets `retryFetch`, `env`, `ctx`, `url` and `init` declared.
// A control file that repeats two mistakes the README once made must fail, with exactly those
// errors: proof that the check is strict and sees the files.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const README = fileURLToPath(new URL("../../README.md", import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

/** The README's code to check: { name, line (README line of its first line), code, domOnly }. */
function readmeBlocks(text) {
  const lines = text.split("\n");
  const blocks = [];
  let heading = "top";
  const seen = new Map();
  for (let i = 0; i < lines.length; i++) {
    if (/^#{2,3} /.test(lines[i])) heading = lines[i].replace(/^#+ /, "");
    const open = lines[i].match(/^```(\w+)\s*$/);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
    assert.ok(end > i, `README.md:${i + 1}: unclosed code block`);
    const tag = lines.slice(0, i).reverse().find((l) => l.trim() !== "")?.match(/<!-- readme-test: ([\w-]+) -->/)?.[1];
    const base = tag ?? heading.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    const name = n === 1 ? base : `${base}-${n}`;
    if (open[1] === "js" || open[1] === "ts") {
      blocks.push({ name, line: i + 2, code: lines.slice(i + 1, end).join("\n"), domOnly: false });
    } else if (open[1] === "html") {
      const from = lines.findIndex((l, j) => j > i && j < end && /<script type="module">/.test(l));
      const to = lines.findIndex((l, j) => j > from && j < end && /<\/script>/.test(l));
      if (from > 0 && to > from) {
        blocks.push({ name, line: from + 2, code: lines.slice(from + 1, to).join("\n"), domOnly: true });
      }
    }
    i = end;
  }
  return blocks;
}

const HOST = `import type { RetryFetch, RetryState } from "llm-retry";
import type { HealthObjectNamespace } from "llm-retry/health/durable-object";
import type { DenoKvLike } from "llm-retry/health/deno-kv";
interface WorkerEnv {
  OPENAI_API_KEY: string;
  STATE: { get(key: string, type: "json"): Promise<RetryState | null>; put(key: string, value: string): Promise<void> };
  HEALTH: HealthObjectNamespace;
}
interface WorkerHandler { fetch(request: Request, env: WorkerEnv, ctx: { waitUntil(promise: Promise<unknown>): void }): Promise<Response> }
declare const Deno: { env: { get(key: string): string | undefined }; openKv(path?: string): Promise<DenoKvLike> };`;

/** A global declaration file beside the blocks: the Workers runtime's module, as far as they use it. */
const AMBIENT = `declare module "cloudflare:workers" {
  export const env: { HEALTH: import("llm-retry/health/durable-object").HealthObjectNamespace; OPENAI_API_KEY: string };
}
`;

const FRAGMENT = `declare const retryFetch: RetryFetch;
declare const env: WorkerEnv;
declare const ctx: { waitUntil(promise: Promise<unknown>): void };
declare const url: string;
declare const init: RequestInit;`;

/** The .ts source for a block, and how many lines precede the block's first line in it. */
function toTypeScript({ code }) {
  const fragment = !/^\s*import /m.test(code);
  const prelude = fragment ? `${HOST}\n${FRAGMENT}` : HOST;
  let body = code;
  if (/^export default \{$/m.test(body)) {
    body = body.replace(/^\};\s*$(?![\s\S]*^\};)/m, "} satisfies WorkerHandler;");
    assert.match(body, /satisfies WorkerHandler/, "the Worker example ends its handler object with `};`");
  }
  // A Next.js route handler in a route.js takes a Request; in TypeScript one writes the type.
  body = body.replace(/^export async function (GET|POST|PUT|PATCH|DELETE)\(request\)/m, "export async function $1(request: Request)");
  return { source: `${prelude}\n${body}\nexport {};\n`, offset: prelude.split("\n").length };
}

// The README once had these; strict tsc must reject both (TS2339: no `reason` on the union; TS2532: possibly undefined).
const CONTROL = `import { createRetryFetch, retryReport } from "llm-retry";
const retryFetch = createRetryFetch({ onEvent: (e) => console.error(e.type, e.reason) });
const res = await retryFetch("https://api.example.test/v1/models");
console.log(retryReport(res).model);
export {};
`;

const blocks = readmeBlocks(readFileSync(README, "utf8"));
const dir = join(here, `.readme-types-${process.pid}`);
mkdirSync(dir, { recursive: true });
after(() => rmSync(dir, { recursive: true, force: true }));
const where = new Map();
for (const b of blocks) {
  const { source, offset } = toTypeScript(b);
  writeFileSync(join(dir, `${b.name}.ts`), source);
  where.set(`${b.name}.ts`, (line) =>
    line > offset ? `README.md:${b.line + line - offset - 1} (block ${b.name})` : `declarations before block ${b.name}, line ${line}`,
  );
}
writeFileSync(join(dir, "control.ts"), CONTROL);
writeFileSync(join(dir, "ambient.d.ts"), AMBIENT);

function typecheck(config, exclude) {
  const compilerOptions = {
    strict: true,
    skipLibCheck: false,
    module: "nodenext",
    moduleResolution: "nodenext",
    target: "es2022",
    noEmit: true,
    ...config,
  };
  const file = `tsconfig.${config.lib.includes("dom") ? "dom" : "node"}.json`;
  const include = ["*.ts"];
  writeFileSync(join(dir, file), JSON.stringify({ compilerOptions, include, exclude }, null, 2));
  const r = spawnSync(process.execPath, [tsc, "-p", join(dir, file), "--pretty", "false"], { cwd: here, encoding: "utf8" });
  const errors = `${r.stdout}${r.stderr}`
    .split("\n")
    .filter((l) => /error TS\d+/.test(l))
    .map((l) => {
      const m = l.match(/^(.*?)\((\d+),(\d+)\): (error TS\d+: .*)$/);
      if (!m) return { file: "", text: l };
      const name = relative(dir, join(here, m[1]));
      const at = where.get(name);
      return { file: name, text: at ? `${at(Number(m[2]))}: ${m[4]}` : `${name}(${m[2]}): ${m[4]}` };
    });
  return {
    readme: errors.filter((e) => e.file !== "control.ts").map((e) => e.text),
    control: errors.filter((e) => e.file === "control.ts").map((e) => e.text.match(/TS\d+/)[0]),
  };
}

test("README: the examples are found (every tagged one, the Workers state lines)", () => {
  const names = blocks.map((b) => b.name);
  for (const tag of ["node-openai", "node-stream", "node-retry-fn", "node-cross-provider", "browser", "workerd", "deno"]) {
    assert.ok(names.includes(tag), `README.md has a block tagged readme-test: ${tag} (found: ${names.join(", ")})`);
  }
  assert.ok(
    blocks.some((b) => b.code.includes("restoreState")),
    "the Workers state lines are checked too",
  );
});

test("README: every JS example type-checks under strict TypeScript with the DOM library", { timeout: 180_000 }, () => {
  const r = typecheck({ lib: ["es2022", "dom", "dom.iterable"], types: [] }, []);
  assert.deepEqual(r.readme, [], `tsc (strict, DOM) found errors in README examples:\n${r.readme.join("\n")}`);
  assert.deepEqual(r.control.sort(), ["TS2339", "TS2532"], "the control file's two mistakes are reported");
});

test("README: every JS example but the page script type-checks under strict TypeScript without the DOM library (@types/node)", { timeout: 180_000 }, () => {
  const domOnly = blocks.filter((b) => b.domOnly).map((b) => `${b.name}.ts`);
  const r = typecheck({ lib: ["es2022"], types: ["node"] }, domOnly);
  assert.deepEqual(r.readme, [], `tsc (strict, no DOM) found errors in README examples:\n${r.readme.join("\n")}`);
  assert.deepEqual(r.control.sort(), ["TS2339", "TS2532"], "the control file's two mistakes are reported");
});
