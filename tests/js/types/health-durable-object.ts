// Typed usage of "llm-retry/health/durable-object", checked (never run) by tsc -p tests/js.
import { createRetryFetch, type HealthRecord } from "llm-retry";
import { HealthObject, durableObjectHealthStore, type HealthObjectNamespace } from "llm-retry/health/durable-object";

declare const HEALTH: HealthObjectNamespace;

export const retryFetch = createRetryFetch({ health: { store: durableObjectHealthStore(HEALTH, { name: "llm-retry" }), refreshMs: 1_000 } });
export const flushed: Promise<void> = retryFetch.flushHealth();

// A binding shaped like workers-types' DurableObjectNamespace<HealthObject>: its stub's methods return promises.
declare const namespace: {
  idFromName(name: string): { toString(): string };
  get(id: { toString(): string }): { read(keys: string[]): Promise<Record<string, HealthRecord>>; write(records: Record<string, HealthRecord>): Promise<void> };
};
durableObjectHealthStore(namespace);

export const Exported: typeof HealthObject = HealthObject;
declare const object: HealthObject;
export const read: Record<string, HealthRecord> = object.read(["https://api.openai.com gpt-4o"]);

// @ts-expect-error: the options take a name, not a number
durableObjectHealthStore(HEALTH, { name: 1 });
// @ts-expect-error: a KV namespace is not a Durable Object binding
durableObjectHealthStore({ get: (key: string) => Promise.resolve(key) });
