// A health store (see index.d.ts, HealthStore) in Redis, over a client the caller opened: the
// `redis` package (node-redis v4 and later: `client.eval(script, { keys, arguments })`) or
// `ioredis` (`client.call("EVAL", script, numKeys, …)`). Imports neither the wasm nor a Redis
// client.
//
// A route's record is one hash, `<prefix><breaker key>`, with the fields openedAt, openUntil,
// closedAt and cooledUntil (integers, ms since the epoch), kept a day after its last write. A write is one EVAL of a script that,
// for every key of the batch, sets a field only when the new value is larger: atomic, and no
// update is lost however many instances write at once. A read is one EVAL that HMGETs every key.
// Pacing (health-pace.js): a route's bucket is the field paceTat of the same hash; a batch of asks
// is one EVAL that computes the slots on Redis's clock (TIME), as policy/pacing.rs `grant` does.
// In Redis Cluster, one EVAL must touch one hash slot: give the prefix a hash tag, e.g.
// "{llm-retry}:health:".
import { FIELDS, checkAsks } from "./health-pace.js";

// A route's hash expires this long after it was last written or paced (a route no longer used —
// a model retired, a fallback removed — leaves nothing behind), ms. A breaker's opening and a
// pause last far less.
const TTL_MS = 86_400_000;

// KEYS: the routes' hashes; ARGV: 4 values per key, in FIELDS order ("0": nothing to tell).
const WRITE = `local f = {'openedAt', 'openUntil', 'closedAt', 'cooledUntil'}
for i, k in ipairs(KEYS) do
  for j = 1, 4 do
    local v = ARGV[(i - 1) * 4 + j]
    local n = tonumber(v)
    if n and n > 0 and n > (tonumber(redis.call('HGET', k, f[j])) or 0) then
      redis.call('HSET', k, f[j], v)
    end
  end
  redis.call('PEXPIRE', k, ${TTL_MS})
end
return #KEYS`;

// KEYS: the routes' hashes; returns 4 integers per key, in FIELDS order (0: none).
const READ = `local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'openedAt', 'openUntil', 'closedAt', 'cooledUntil')
  for j = 1, 4 do out[#out + 1] = tonumber(v[j]) or 0 end
end
return out`;

// KEYS: the asks' routes' hashes; ARGV: 5 values per ask: n, interval, burst, tat, within (-1:
// however late). Returns per ask its n slots (ms since the epoch on Redis's clock).
const PACE = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, k in ipairs(KEYS) do
  local a = (i - 1) * 5
  local n, interval, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local asked, within = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local tat = math.max(tonumber(redis.call('HGET', k, 'paceTat')) or 0, math.min(asked, now + 86400000))
  local tolerance = (burst - 1) * interval
  local slots = {}
  for j = 1, n do
    local at = math.max(tat - tolerance, now)
    if within < 0 or at <= now + within then tat = math.max(tat, at) + interval end
    slots[j] = math.ceil(at)
  end
  redis.call('HSET', k, 'paceTat', string.format('%.3f', tat))
  redis.call('PEXPIRE', k, ${TTL_MS})
  out[i] = slots
end
return out`;

/** An instant as Redis stores it: a non-negative integer string (never shorter: rounded up). */
const instant = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? String(Math.ceil(v)) : "0");

/** How to run one EVAL on this client. */
function evaluator(client) {
  if (typeof client !== "object" || client === null) {
    throw new TypeError("redisHealthStore: client must be a connected `redis` (node-redis) or `ioredis` client");
  }
  // ioredis: `call(command, ...args)` sends any command (its `eval` takes numKeys positionally).
  if (typeof client.defineCommand === "function" && typeof client.call === "function") {
    return (script, keys, args) => client.call("EVAL", script, keys.length, ...keys, ...args);
  }
  // node-redis v4 and later (a client, a pool or a cluster: the cluster routes by the first key).
  if (typeof client.eval === "function") {
    return (script, keys, args) => client.eval(script, { keys, arguments: args });
  }
  if (typeof client.sendCommand === "function") {
    return (script, keys, args) => client.sendCommand(["EVAL", script, String(keys.length), ...keys, ...args]);
  }
  throw new TypeError("redisHealthStore: client must be a connected `redis` (node-redis) or `ioredis` client (no eval, call or sendCommand method)");
}

/** Rejects when `p` has not settled within `ms` (a client that queues commands while it is
 * disconnected would otherwise never answer). */
function bounded(p, ms, what) {
  if (!(ms > 0 && ms < Infinity)) return p;
  let id;
  return Promise.race([
    Promise.resolve(p).finally(() => clearTimeout(id)),
    new Promise((_, reject) => {
      id = setTimeout(() => reject(new Error(`redisHealthStore: ${what} not answered within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * A health store in Redis. `client`: a connected node-redis or ioredis client (attach an "error"
 * listener, as those clients require). `prefix` starts every key; `timeoutMs` bounds each read
 * write and pace (a rejection is what the retry client tells `health.onError`).
 */
export function redisHealthStore(client, { prefix = "llm-retry:health:", timeoutMs = 1000 } = {}) {
  const evalScript = evaluator(client);
  if (typeof prefix !== "string") throw new TypeError("redisHealthStore: prefix must be a string");
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0)) throw new RangeError("redisHealthStore: timeoutMs must be a positive number of ms");
  return {
    async read(keys) {
      if (keys.length === 0) return {};
      const values = await bounded(evalScript(READ, keys.map((k) => prefix + k), []), timeoutMs, "read");
      if (!Array.isArray(values) || values.length !== keys.length * 4) {
        throw new TypeError(`redisHealthStore: unexpected read reply ${JSON.stringify(values)?.slice(0, 100)}`);
      }
      const records = {};
      keys.forEach((key, i) => {
        const v = values.slice(i * 4, i * 4 + 4).map(Number);
        if (v.some((x) => x > 0)) records[key] = Object.fromEntries(FIELDS.map((f, j) => [f, v[j]]));
      });
      return records;
    },
    async write(records) {
      const keys = Object.keys(records);
      if (keys.length === 0) return;
      const args = keys.flatMap((k) => FIELDS.map((f) => instant(records[k]?.[f])));
      await bounded(evalScript(WRITE, keys.map((k) => prefix + k), args), timeoutMs, "write");
    },
    async pace(asks) {
      const checked = checkAsks(asks);
      if (checked.length === 0) return [];
      const args = checked.flatMap((a) => [a.n, a.interval, a.burst, a.tat, a.within === Infinity ? -1 : a.within].map(String));
      const slots = await bounded(evalScript(PACE, checked.map((a) => prefix + a.key), args), timeoutMs, "pace");
      if (!Array.isArray(slots) || slots.length !== checked.length) {
        throw new TypeError(`redisHealthStore: unexpected pace reply ${JSON.stringify(slots)?.slice(0, 100)}`);
      }
      return slots.map((s) => (Array.isArray(s) ? s.map(Number) : []));
    },
  };
}
