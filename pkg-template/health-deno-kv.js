// A health store (see index.d.ts, HealthStore) in Deno KV, over a `Deno.Kv` the caller opened
// (`await Deno.openKv()`, a local path, or Deno Deploy's). Imports neither the wasm nor Deno's
// modules (only the bucket's, health-pace.js).
//
// A route's record is four entries, `[...prefix, <breaker key>, <field>]` for the fields
// openedAt, openUntil, closedAt and cooledUntil, each a Deno.KvU64 (ms since the epoch). A write
// is one atomic commit of `max(key, bigint)` mutations, so KV itself keeps, per field, the larger
// value: no update is lost however many instances write at once. A read is `getMany` (10 keys per
// call, so 2 routes per call; the calls run together).
// Pacing (health-pace.js): a route's bucket is the entry `[...prefix, <breaker key>, "paceTat"]`
// (a number); an ask reads it, computes the slots on this process's clock, and commits only if
// the entry did not change meanwhile (an atomic check), else tries again. It expires a day after
// its last ask (a bucket run out is the same as none); the records' entries, written by `max`
// mutations, which take no expiry, are kept.
import { DAY, FIELDS, checkAsks, grant } from "./health-pace.js";

/** getMany reads at most 10 keys per call: two routes' four fields. */
const ROUTES_PER_READ = 2;
/** Routes per atomic commit (4 mutations each), well under KV's limit of mutations per commit. */
const ROUTES_PER_COMMIT = 100;

/** An instant as the bigint `max` takes (stored as a Deno.KvU64), or undefined when there is
 * nothing to tell (rounded up: never shorter). */
const u64 = (v) => (typeof v === "number" && Number.isFinite(v) && v >= 1 ? BigInt(Math.ceil(v)) : undefined);

function bounded(p, ms, what) {
  if (!(ms > 0 && ms < Infinity)) return p;
  let id;
  return Promise.race([
    Promise.resolve(p).finally(() => clearTimeout(id)),
    new Promise((_, reject) => {
      id = setTimeout(() => reject(new Error(`denoKvHealthStore: ${what} not answered within ${ms} ms`)), ms);
    }),
  ]);
}

/** Tries of one ask's check-and-set before it gives up (each lost one means another instance took slots). */
const PACE_TRIES = 20;

const chunks = (xs, n) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));

/**
 * A health store in Deno KV. `kv`: an open Deno.Kv. `prefix` starts every key; `timeoutMs`
 * bounds each read, write and pace (a rejection is what the retry client tells `health.onError`).
 */
export function denoKvHealthStore(kv, { prefix = ["llm-retry", "health"], timeoutMs = 1000 } = {}) {
  if (typeof kv?.getMany !== "function" || typeof kv?.atomic !== "function") {
    throw new TypeError("denoKvHealthStore: kv must be an open Deno.Kv (await Deno.openKv())");
  }
  if (!Array.isArray(prefix)) throw new TypeError("denoKvHealthStore: prefix must be an array of key parts");
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0)) throw new RangeError("denoKvHealthStore: timeoutMs must be a positive number of ms");
  const entry = (key, field) => [...prefix, key, field];
  return {
    async read(keys) {
      const parts = chunks(keys, ROUTES_PER_READ).map((ks) => kv.getMany(ks.flatMap((k) => FIELDS.map((f) => entry(k, f)))));
      const entries = (await bounded(Promise.all(parts), timeoutMs, "read")).flat();
      const records = {};
      keys.forEach((key, i) => {
        const v = entries.slice(i * 4, i * 4 + 4).map((e) => (e.value instanceof Deno.KvU64 ? Number(e.value.value) : 0));
        if (v.some((x) => x > 0)) records[key] = Object.fromEntries(FIELDS.map((f, j) => [f, v[j]]));
      });
      return records;
    },
    async write(records) {
      const commits = chunks(Object.keys(records), ROUTES_PER_COMMIT).map((ks) => {
        const op = kv.atomic();
        for (const k of ks) {
          for (const f of FIELDS) {
            const v = u64(records[k]?.[f]);
            if (v) op.max(entry(k, f), v);
          }
        }
        return op.commit();
      });
      const results = await bounded(Promise.all(commits), timeoutMs, "write");
      if (results.some((r) => !r?.ok)) throw new Error("denoKvHealthStore: a write was not committed");
    },
    async pace(asks) {
      const one = async (ask) => {
        const key = entry(ask.key, "paceTat");
        let lost = new Error(`denoKvHealthStore: pace lost ${PACE_TRIES} tries to other instances`);
        for (let i = 0; i < PACE_TRIES; i++) {
          try {
            const seen = await kv.get(key);
            const [slots, tat] = grant(typeof seen.value === "number" ? seen.value : 0, ask, Date.now());
            if ((await kv.atomic().check(seen).set(key, tat, { expireIn: DAY }).commit()).ok) return slots;
          } catch (e) {
            lost = e; // a local file's KV may be locked by another process's commit ("database is locked")
          }
          await new Promise((r) => setTimeout(r, Math.random() * 4 * (i + 1)));
        }
        throw lost;
      };
      return await bounded(Promise.all(checkAsks(asks).map(one)), timeoutMs, "pace");
    },
  };
}
