import type { HealthStore } from "./index.js";

export interface RedisHealthStoreOptions {
  /** Starts every key (one hash per route). In Redis Cluster give it a hash tag, e.g. "{llm-retry}:health:". ["llm-retry:health:"] */
  prefix?: string;
  /** Bounds each read, write and pace, ms; past it the operation rejects (told to `health.onError`). [1000] */
  timeoutMs?: number;
}

/** The parts of a `redis` (node-redis v4+) or `ioredis` client the store uses. */
export type RedisClientLike =
  | { eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown> }
  | { call(command: string, ...args: (string | number)[]): Promise<unknown>; defineCommand(...args: any[]): unknown }
  | { sendCommand(args: string[]): Promise<unknown> };

/** A health store in Redis over a connected client you pass (node-redis or ioredis): writes are one atomic script per batch keeping, per field, the larger value; reads are one round trip; it paces busy routes from one bucket each (one script per batch of asks, on Redis's clock). */
export function redisHealthStore(client: RedisClientLike, options?: RedisHealthStoreOptions): HealthStore;
