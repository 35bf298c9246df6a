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

declare const kv: {
  getMany(keys: readonly (readonly unknown[])[]): Promise<{ value: unknown }[]>;
  atomic(): { max(key: readonly unknown[], n: bigint): unknown; commit(): Promise<{ ok: true } | { ok: false }> };
};
createRetryFetch({ health: { store: denoKvHealthStore(kv, { prefix: ["app", 1] }) } });
