// The send slots a health store hands out when it paces (`store.pace`): one bucket per route,
// shared by every instance that asks, computed as policy/pacing.rs `grant` does (GCRA). A busy
// route's sends ask it, one batch per turn of each instance: `[{ key, n, interval, burst, tat,
// within }]` — the route, how many slots, the provider's rate (ms between sends) and burst as the
// asker learned them from its headers, its count (`tat`: when its bucket is full again), and
// optionally `within`: take a slot only if it is no later than that many ms from now (a call with
// another route ready). The answer has, per ask, n instants (ms since the epoch, on the store's
// clock), in order; one later than `within` allows is not taken, and says when it would be.
// Used by memoryHealthStore (api.js) and the Durable Object, which also merge records here and
// forget what has gone stale (`sweeper`), so that what they hold follows the routes in use, not
// every route ever told; the other stores take the asks' checks and the fields' names from here.

/** At most this many slots per ask (a batch is one turn's sends). */
const MAX_N = 10_000;
/** An interval or count this far out is not a rate limit; and a record or bucket this stale is
 * forgotten (a day). */
export const DAY = 86_400_000;

const number = (v, what, ok) => {
  if (typeof v !== "number" || !ok(v)) throw new RangeError(`pace: ${what} is out of range: ${v}`);
  return v;
};

/** The asks, checked whole before any is answered. */
export function checkAsks(asks) {
  if (!Array.isArray(asks)) throw new TypeError("pace(asks): asks must be an array of { key, n, interval, burst, tat, within? }");
  return asks.map((a) => {
    if (typeof a?.key !== "string" || a.key === "") throw new TypeError("pace: each ask's key must be a non-empty string");
    return {
      key: a.key,
      n: number(a.n, "n", (v) => Number.isInteger(v) && v >= 1 && v <= MAX_N),
      interval: number(a.interval, "interval", (v) => v > 0 && v <= DAY),
      burst: number(a.burst, "burst", (v) => v >= 1 && v <= 1e9),
      tat: number(a.tat, "tat", Number.isFinite),
      within: a.within === undefined ? Infinity : number(a.within, "within", (v) => v >= 0),
    };
  });
}

/** The slots for one checked ask, from the bucket's `tat` (0: new) at `now`: [slots, tat after]. */
export function grant(tat, { n, interval, burst, tat: asked, within }, now) {
  // The asker's count moves the bucket on (never more than a day ahead of now).
  tat = Math.max(tat, Math.min(asked, now + DAY));
  const tolerance = (burst - 1) * interval;
  const slots = [];
  for (let i = 0; i < n; i++) {
    const at = Math.max(tat - tolerance, now);
    if (at <= now + within) tat = Math.max(tat, at) + interval;
    slots.push(Math.ceil(at));
  }
  return [slots, tat];
}

/** A store's pace: answers asks from one bucket per route (a Map of key → tat), updating it. A
 * bucket whose tat is past is the same as none, and is forgotten (`sweeper`). */
export function bucketsPace() {
  const buckets = new Map();
  const sweep = sweeper(buckets, (tat, now) => tat <= now);
  return (asks, now) => {
    const out = checkAsks(asks).map((ask) => {
      const [slots, tat] = grant(buckets.get(ask.key) ?? 0, ask, now);
      buckets.set(ask.key, tat);
      return slots;
    });
    sweep(now);
    return out;
  };
}

/** A health record's fields (see index.d.ts, HealthRecord), in the order the stores keep them. */
export const FIELDS = ["openedAt", "openUntil", "closedAt", "cooledUntil"];

/** A field's value as an instant (ms since the epoch), or 0 (never) for anything else. */
const instant = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);

/** The record `old` (undefined: none) merged with what `r` tells: per field, the larger value. */
export const merged = (old, r) => Object.fromEntries(FIELDS.map((f) => [f, Math.max(old?.[f] ?? 0, instant(r?.[f]))]));

/** A record every instant of which is a day past tells a client nothing it would act on: no
 * opening or pause in force, and news it has long had (Redis's keys expire the same way). */
export const recordStale = (r, now) => FIELDS.every((f) => !(r[f] > now - DAY));

/** Below this many entries a map is never swept. */
const SWEEP_FROM = 1024;

/** `sweep(now)` for `map`: once it holds SWEEP_FROM entries and twice what the last sweep kept,
 * drops those `stale(value, now)` finds stale and returns their keys (else none). What the map
 * holds stays within about twice its live entries, for one pass over it per doubling. */
export function sweeper(map, stale) {
  let at = SWEEP_FROM;
  return (now) => {
    const gone = [];
    if (map.size < at) return gone;
    for (const [k, v] of map) {
      if (stale(v, now)) {
        map.delete(k);
        gone.push(k);
      }
    }
    at = Math.max(SWEEP_FROM, 2 * map.size);
    return gone;
  };
}
