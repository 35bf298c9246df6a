// "llm-retry/health/durable-object": shared health for Cloudflare Workers.
import type { HealthRecord, HealthStore, PaceAsk } from "./index.js";

/**
 * A Durable Object keeping the health records of a set of routes, in memory and in its storage (a
 * restarted object keeps them), and pacing their busy routes' sends from one bucket each. Records a day stale (every instant in them a day past) and buckets run out are forgotten as it grows, from its storage too. Export it from your Worker (`export { HealthObject } from
 * "llm-retry/health/durable-object"`), bind it (`[[durable_objects.bindings]]`) and declare it in a
 * migration (`new_sqlite_classes`). Clients reach it through `durableObjectHealthStore`.
 */
export declare class HealthObject {
  constructor(ctx: unknown, env: unknown);
  /** The records known for these keys (a key with none is left out). */
  read(keys: string[]): Record<string, HealthRecord>;
  /** Merges these records into the kept ones, per field by the larger value; resolves once stored. */
  write(records: Record<string, HealthRecord>): Promise<void>;
  /** Send slots for busy routes from one bucket per route (in memory), shared by every client that asks. */
  pace(asks: PaceAsk[]): number[][];
}

/** What `durableObjectHealthStore` needs of a Durable Object binding (`env.HEALTH`). */
export interface HealthObjectNamespace {
  idFromName(name: string): unknown;
  get(id: any): {
    read(keys: string[]): PromiseLike<Record<string, HealthRecord>>;
    write(records: Record<string, HealthRecord>): PromiseLike<void>;
    pace?(asks: PaceAsk[]): PromiseLike<number[][]>;
  };
}

export interface DurableObjectHealthStoreOptions {
  /** The object's name in the namespace: clients that give the same name share health. ["llm-retry"] */
  name?: string;
}

/** A health store for `createRetryFetch({ health: { store } })`, backed by the HealthObject named `name` in `namespace`. */
export function durableObjectHealthStore(namespace: HealthObjectNamespace, options?: DurableObjectHealthStoreOptions): HealthStore;
