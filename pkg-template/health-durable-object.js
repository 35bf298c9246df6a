// Shared health for Cloudflare Workers: a Durable Object that keeps the health records of a set
// of routes (policy/health.rs), and the store through which clients read and write them.
//
//   export { HealthObject } from "llm-retry/health/durable-object";   // the Worker's class export
//   createRetryFetch({ health: { store: durableObjectHealthStore(env.HEALTH) } })
//
// Its own module: nothing here is loaded by the runtime entries, and it does not import the wasm.
// The object is called through Workers RPC (methods on a `DurableObject` subclass).
import { DurableObject } from "cloudflare:workers";
import { FIELDS, bucketsPace, merged, recordStale, sweeper } from "./health-pace.js";

/** Storage keys are the route keys under this prefix (the object's storage holds nothing else). */
const PREFIX = "health:";
/** Storage keys may be 2048 bytes long; a route key (origin and model) is far shorter. */
const MAX_KEY = 1024;
/** Entries per storage.put or storage.delete (the key-value API's limit). */
const BATCH = 128;

const checkKey = (k) => {
  if (typeof k !== "string" || k.length === 0 || k.length > MAX_KEY) {
    throw new TypeError(`a health key must be a string of 1 to ${MAX_KEY} characters`);
  }
  return k;
};

/**
 * A Durable Object holding the health records of a set of routes: in memory, and in its storage,
 * so a restarted object keeps them. `write` merges per field by keeping the larger value (never
 * overwrites), so writes from any number of instances, in any order, give the same state.
 * Records a day stale and buckets run out are forgotten as the object grows (health-pace.js).
 */
export class HealthObject extends DurableObject {
  #sweep;
  #pace;

  constructor(ctx, env) {
    super(ctx, env);
    /** key → { openedAt, openUntil, closedAt, cooledUntil } */
    this.records = new Map();
    this.#sweep = sweeper(this.records, recordStale);
    /** The pacing buckets (memory only: a restart forgets the counts, and the next asks bring them
     * back). */
    this.#pace = bucketsPace();
    ctx.blockConcurrencyWhile(async () => {
      for (const [k, r] of await ctx.storage.list({ prefix: PREFIX })) this.records.set(k.slice(PREFIX.length), r);
    });
  }

  /** The records known for `keys` (keys without one are left out). */
  read(keys) {
    if (!Array.isArray(keys)) throw new TypeError("read(keys): keys must be an array of strings");
    const out = {};
    for (const k of keys) {
      const r = this.records.get(checkKey(k));
      if (r) out[k] = { ...r };
    }
    return out;
  }

  /** Merges `records` ({ [key]: record }) into the kept ones, per field by max; persists the changed
   * ones before it resolves. The batch is checked whole before any of it is applied. */
  async write(records) {
    if (typeof records !== "object" || records === null || Array.isArray(records)) {
      throw new TypeError("write(records): records must be an object of { [key]: record }");
    }
    const entries = Object.entries(records).map(([k, r]) => [checkKey(k), r]);
    const changed = [];
    for (const [k, r] of entries) {
      const old = this.records.get(k);
      const record = merged(old, r);
      if (old !== undefined && FIELDS.every((f) => record[f] === (old[f] ?? 0))) continue;
      this.records.set(k, record);
      changed.push([PREFIX + k, record]);
    }
    const gone = this.#sweep(Date.now());
    for (let i = 0; i < changed.length; i += BATCH) {
      await this.ctx.storage.put(Object.fromEntries(changed.slice(i, i + BATCH)));
    }
    for (let i = 0; i < gone.length; i += BATCH) {
      // A key written anew meanwhile (by a write that ran while this one awaited) is kept.
      const keys = gone.slice(i, i + BATCH).filter((k) => !this.records.has(k));
      if (keys.length > 0) await this.ctx.storage.delete(keys.map((k) => PREFIX + k));
    }
  }

  /** Send slots for busy routes, from one bucket per route that every instance asking shares
   * (health-pace.js): `[{ key, n, interval, burst, tat, within? }]` → `[[slot, …], …]`. */
  pace(asks) {
    if (Array.isArray(asks)) for (const a of asks) checkKey(a?.key);
    return this.#pace(asks, Date.now());
  }
}

/**
 * A health store (see index.d.ts, HealthStore) backed by one HealthObject: the one named `name` in
 * `namespace` (the Durable Object binding, e.g. `env.HEALTH`). Each read and write takes a fresh
 * stub: a stub belongs to the request that made it, and a client outlives its requests.
 */
export function durableObjectHealthStore(namespace, { name = "llm-retry" } = {}) {
  if (typeof namespace?.idFromName !== "function" || typeof namespace?.get !== "function") {
    throw new TypeError("durableObjectHealthStore: namespace must be a Durable Object binding (env.HEALTH)");
  }
  if (typeof name !== "string" || name === "") throw new TypeError("durableObjectHealthStore: name must be a non-empty string");
  let id; // made at the first call, not at global scope
  const stub = () => namespace.get((id ??= namespace.idFromName(name)));
  return {
    async read(keys) {
      return await stub().read(keys);
    },
    async write(records) {
      await stub().write(records);
    },
    async pace(asks) {
      return await stub().pace(asks);
    },
  };
}
