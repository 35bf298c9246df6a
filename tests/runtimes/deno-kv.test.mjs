// Shared health through Deno KV ("llm-retry/health/deno-kv", from the installed tarball): Deno
// processes standing for instances, each opening the same KV, a local SQLite file in a fresh temp
// dir (Deno.openKv(path), --unstable-kv), with reads and writes granted on that dir only and the
// network on 127.0.0.1 only. Mock providers run here in Node (fixtures/deno-kv.mjs is the Deno side).

import { test, describe, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mockFor } from "./harness.mjs";
import { deno, DENO_PERMS, DENO_RESOLVE, PKG_DIR } from "./runtimes.mjs";

const T = { timeout: 60_000 };
const chat = "/v1/chat/completions";
const FIELDS = ["openedAt", "openUntil", "closedAt", "cooledUntil"];

let dir;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "llm-retry-deno-kv-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** One Deno process of fixtures/deno-kv.mjs; resolves its JSON line. */
async function instance(mode, opts) {
  const perms = [...DENO_PERMS, `--allow-read=${dir}`, `--allow-write=${dir}`];
  const args = ["run", "--unstable-kv", ...DENO_RESOLVE, ...perms, "fixtures/deno-kv.mjs", mode, JSON.stringify({ path: join(dir, "kv.sqlite3"), ...opts })];
  const { code, stdout, stderr } = await deno(args, { timeoutMs: 45_000 });
  assert.equal(code, 0, `deno exited ${code}\nstderr: ${stderr}\nstdout: ${stdout}`);
  assert.equal(stderr.trim(), "", "nothing on stderr (no warnings, no permission prompts)");
  return JSON.parse(stdout.trim().split("\n").at(-1));
}

describe("Deno KV health store, two Deno processes on one KV file", () => {
  test("once instance A met the primary's outage, instance B skips it without a request; the fallback serves", T, async (t) => {
    const primary = await mockFor(t, { script: [{ status: 503 }] });
    const backup = await mockFor(t, { script: [{ status: 200 }] });
    const urls = { primary: primary.url, backup: backup.url };

    const a = await instance("call", { ...urls, calls: 2 });
    assert.deepEqual(a.errors, []);
    assert.deepEqual(a.results.map((r) => [r.status, r.model]), [[200, "backup"], [200, "backup"]]);
    assert.equal(primary.requests.length, 2, "A met the outage: two 503s, then its breaker opened");
    const key = a.keys.find((k) => k.startsWith(primary.url));
    const rec = a.records[key];
    assert.ok(rec?.openedAt > 0 && rec.openUntil >= rec.openedAt + 5_000, `A's record: ${JSON.stringify(a.records)}`);

    const b = await instance("call", { ...urls, calls: 2 });
    assert.deepEqual(b.errors, []);
    for (const r of b.results) {
      assert.equal(r.status, 200);
      assert.equal(r.model, "backup", "the fallback served");
      assert.deepEqual(r.skipped, [0], "the primary was skipped");
    }
    assert.equal(primary.requests.length, 2, "B sent nothing to the route A found down");
    assert.equal(backup.requests.length, 4);

    const { raw } = await instance("read", { keys: [key] });
    assert.deepEqual(
      raw.filter(([k]) => k[2] === key).map(([k, v]) => [k[3], v]).sort(),
      [["openUntil", `u64:${rec.openUntil}`], ["openedAt", `u64:${rec.openedAt}`]],
      "per route and field, one Deno.KvU64 entry (closedAt and cooledUntil never written)",
    );
  });

  test("concurrent writes from 3 processes × 2 handles each leave every field at its maximum (no lost update)", T, async () => {
    const keys = ["r0", "r1", "r2", "r3", "r4"]; // 20 entries: read back over more than one getMany
    const base = Date.now();
    const startAt = Date.now() + 1_500; // after every process has started: the writes overlap
    const outs = await Promise.all([11, 22, 33].map((seed) => instance("write", { seed, keys, base, startAt, rounds: 80 })));
    const want = {};
    for (const { want: w } of outs) {
      for (const [k, r] of Object.entries(w)) {
        want[k] ??= Object.fromEntries(FIELDS.map((f) => [f, 0]));
        for (const f of FIELDS) want[k][f] = Math.max(want[k][f], r[f]);
      }
    }
    assert.deepEqual(Object.keys(want).sort(), keys);
    const spans = outs.map((o) => [o.started, o.ended]);
    const overlap = Math.min(...spans.map((s) => s[1])) - Math.max(...spans.map((s) => s[0]));
    assert.ok(overlap > 0, `the three processes wrote at the same time: ${JSON.stringify(spans)}`);
    const { records } = await instance("read", { keys: [...keys, "never"] });
    assert.deepEqual(records, want, "every field at the largest value any instance wrote; an unknown key absent");
  });
});

describe("Deno KV pacing, three Deno processes asking one bucket at once", () => {
  test("every slot is handed out once: together the processes' slots keep the bucket's rate", T, async () => {
    const startAt = Date.now() + 1_500;
    const outs = await Promise.all([0, 1, 2].map(() => instance("pace", { startAt, asks: 30 })));
    const slots = outs.flatMap((o) => o.slots).sort((a, b) => a - b);
    assert.equal(slots.length, 90);
    const spans = outs.map((o) => [o.started, o.ended]);
    assert.ok(Math.min(...spans.map((s) => s[1])) > Math.max(...spans.map((s) => s[0])), `the processes asked at the same time: ${JSON.stringify(spans)}`);
    // Burst 2, one slot per 10 ms: whatever the order of the asks, at most 2 in any 10 ms.
    for (let i = 2; i < slots.length; i++) assert.ok(slots[i] - slots[i - 2] >= 10, `slots ${i - 2}..${i}: ${slots.slice(i - 2, i + 1)}`);
    assert.ok(slots.at(-1) - slots[0] >= 870, `90 slots at 100 a second span ${slots.at(-1) - slots[0]} ms`);
  });
});

describe("the module", () => {
  test("its declarations take a real Deno.Kv (deno check fixtures/deno-kv-types.ts)", T, async () => {
    const { code, stderr } = await deno(["check", "--unstable-kv", ...DENO_RESOLVE, "fixtures/deno-kv-types.ts"], { timeoutMs: 45_000 });
    assert.equal(code, 0, stderr);
  });

  test("imports only the bucket's module, and is not in the entries", () => {
    const { exports } = JSON.parse(readFileSync(join(PKG_DIR, "package.json"), "utf8"));
    assert.deepEqual(exports["./health/deno-kv"], { types: "./health-deno-kv.d.ts", default: "./health-deno-kv.js" });
    const src = readFileSync(join(PKG_DIR, "health-deno-kv.js"), "utf8");
    const imports = [...src.matchAll(/^\s*import\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]);
    assert.deepEqual(imports, ["./health-pace.js"]);
    assert.doesNotMatch(src, /\bimport\(|\brequire\(/);
    for (const entry of ["deno.js", "node.js", "browser.js", "workerd.js"]) {
      assert.doesNotMatch(readFileSync(join(PKG_DIR, entry), "utf8"), /denoKvHealthStore|getMany/, entry);
    }
  });
});
