// Type-checked by health-redis.test.mjs (tsc -p tsconfig.stores.json, with Node's types: the Redis
// clients' declarations need them): the health-store modules take a node-redis or ioredis client,
// or a Deno KV-shaped object, each giving a HealthStore that createRetryFetch takes.
import { createClient } from "redis";
import { Redis } from "ioredis";
import { createRetryFetch, type HealthStore } from "llm-retry";
import { redisHealthStore } from "llm-retry/health/redis";
import { denoKvHealthStore } from "llm-retry/health/deno-kv";

const nodeRedis = createClient({ url: "redis://127.0.0.1:6379" });
const ioredis = new Redis({ lazyConnect: true });
const a: HealthStore = redisHealthStore(nodeRedis, { prefix: "{app}:health:" });
const b: HealthStore = redisHealthStore(ioredis, { timeoutMs: 500 });
createRetryFetch({ health: { store: a, onError: (e, op) => console.log(op, e) } });
createRetryFetch({ health: { store: b } });
// @ts-expect-error: the prefix is a string
redisHealthStore(ioredis, { prefix: ["app"] });
// @ts-expect-error: not a Redis client
redisHealthStore({ get: () => 1 });

// A Deno.Kv's shape (the real one is checked by tests/runtimes/deno-kv.test.mjs, `deno check`).
interface Atomic {
  max(key: readonly unknown[], n: bigint): this;
  check(...checks: { key: readonly unknown[]; versionstamp: string | null }[]): this;
  set(key: readonly unknown[], value: unknown): this;
  commit(): Promise<{ ok: true; versionstamp: string } | { ok: false }>;
}
declare const kv: {
  get(key: readonly unknown[]): Promise<{ key: readonly unknown[]; value: unknown; versionstamp: string | null }>;
  getMany(keys: readonly (readonly unknown[])[]): Promise<{ value: unknown }[]>;
  atomic(): Atomic;
};
createRetryFetch({ health: { store: denoKvHealthStore(kv, { prefix: ["app", 1] }) } });
