// Shared health (policy/health.rs): a client's link to a store that instances share (a Durable
// Object, Deno KV, Redis, or memory). The store is read in the background, at most every
// `refreshMs`, for every route the client's calls named in the last minute (READ_FOR_MS); a call
// waits for a read only while its client has never read one, and then at most `firstReadMs`.
// What the breakers learn is written in the background, one batch per turn of the event loop. A
// read or write is given up after `timeoutMs`. A store that fails or hangs delays no call beyond
// the first bound, holds up no later read or write, and is told to `onError`.
// A store with `pace` also hands out send slots for busy routes (policy/pacing.rs, Shared): the
// asks of one turn go as one batch; a failed or late batch is answered "none" (the calls pace on
// their own) and pacing is not shared again for `refreshMs`.

import { untilAborted } from "./host.js";
import { field, got } from "./values.js";

const RECORD = ["openedAt", "openUntil", "closedAt", "cooledUntil"];
const instant = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);
/** A route's record is read for as long after a call named it: a client whose calls name ever
 * new routes (a gateway passing its users' models on) reads those in use, not every one it met. */
const READ_FOR_MS = 60_000;

export class HealthLink {
  constructor(store, refreshMs, firstReadMs, timeoutMs, onError) {
    Object.assign(this, { store, refreshMs, firstReadMs, timeoutMs, onError });
    this.keys = new Map(); // route key → when a call last named it
    this.readAt = -Infinity;
    this.reading = undefined;
    this.read = false; // a read has completed, failed, or was not waited for
    this.queue = new Map();
    this.batch = undefined; // the batch this turn's news go into
    this.writes = new Set(); // [promise, started at]
    this.asks = new Map(); // route key and within → { key, n, interval, burst, tat, within, answers: [resolve] }: this turn's
    this.asking = false;
    this.paceDownUntil = 0;
    /** Set by the client (api.js): takes records as `[key, openedAt, openUntil, closedAt, cooledUntil, …]`. */
    this.sink = undefined;
  }

  error(e, op) {
    try {
      this.onError?.(e, op);
    } catch {}
  }

  /** The store's answer, or a TimeoutError after `timeoutMs`. */
  bounded(call) {
    let id;
    const late = new Promise((_, reject) => {
      id = setTimeout(() => reject(new DOMException(`the health store took over ${this.timeoutMs} ms (health.timeoutMs)`, "TimeoutError")), this.timeoutMs);
    });
    return Promise.race([new Promise((resolve) => resolve(call())), late]).finally(() => clearTimeout(id));
  }

  /** Before a call on routes `keys`: starts a read when one is due; a promise to wait for
   * (bounded) while none has completed yet, else undefined. */
  before(keys) {
    const now = Date.now();
    for (const k of keys) this.keys.set(k, now);
    // A read past its bound is abandoned (a Worker drops what a finished request left running).
    if (this.reading !== undefined && now - this.readAt > this.timeoutMs) this.reading = undefined;
    if (this.reading === undefined && now - this.readAt >= this.refreshMs) this.start(now);
    if (this.read || this.reading === undefined || this.firstReadMs === 0) return undefined;
    let id;
    const late = () => (this.read = true); // a store this slow is not waited for again
    return Promise.race([
      this.reading.finally(() => clearTimeout(id)),
      new Promise((resolve) => (id = setTimeout(() => resolve(late()), this.firstReadMs))),
    ]);
  }

  start(now) {
    this.readAt = now;
    for (const [k, at] of this.keys) if (now - at > READ_FOR_MS) this.keys.delete(k);
    const reading = (async () => {
      try {
        const records = await this.bounded(() => this.store.read([...this.keys.keys()]));
        if (typeof records !== "object" || records === null || Array.isArray(records)) {
          throw new TypeError(`health.store.read resolved to ${got(records)}, not an object of records by route key`);
        }
        const flat = [];
        for (const key of this.keys.keys()) {
          const r = field(records, key);
          if (typeof r === "object" && r !== null) flat.push(key, ...RECORD.map((f) => instant(field(r, f))));
        }
        if (flat.length) this.sink?.(flat);
      } catch (e) {
        this.error(e, "read");
      } finally {
        if (this.reading === reading) this.reading = undefined;
        this.read = true;
      }
    })();
    this.reading = reading;
  }

  /** Records the breakers have news of (`[key, openedAt, openUntil, closedAt, cooledUntil, …]`),
   * merged into this turn's batch. Batches are written independently: a store merges by max,
   * so their order does not matter, and one that hangs holds up no other. */
  tell(flat) {
    for (let i = 0; i + 4 < flat.length; i += 5) {
      const old = this.queue.get(flat[i]);
      this.queue.set(flat[i], Object.fromEntries(RECORD.map((f, j) => [f, Math.max(flat[i + 1 + j], old?.[f] ?? 0)])));
    }
    this.batch ??= Promise.resolve().then(() => {
      this.batch = undefined;
      const records = Object.fromEntries(this.queue);
      this.queue.clear();
      const entry = [undefined, Date.now()];
      entry[0] = this.bounded(() => this.store.write(records))
        .catch((e) => this.error(e, "write"))
        .finally(() => this.writes.delete(entry));
      this.writes.add(entry);
    });
  }

  /** A send slot for route `key` from the store's shared bucket (policy/pacing.rs Ask; `within`
   * undefined: however late), as a promise of the slot (ms since the epoch) or undefined; rejects
   * with the caller's reason when `signal` aborts first. Undefined at once while pacing is not shared. */
  pace(key, interval, burst, tat, within, signal) {
    if (Date.now() < this.paceDownUntil) return undefined;
    const id = `${within}\n${key}`;
    let ask = this.asks.get(id);
    if (ask === undefined) this.asks.set(id, (ask = { key, n: 0, interval, burst, tat, within, answers: [] }));
    // The batch asks as its most careful member: the longest interval, the smallest burst, the latest count.
    Object.assign(ask, { n: ask.n + 1, interval: Math.max(ask.interval, interval), burst: Math.min(ask.burst, burst), tat: Math.max(ask.tat, tat) });
    const slot = new Promise((resolve) => ask.answers.push(resolve));
    if (!this.asking) {
      this.asking = true;
      queueMicrotask(() => this.ask());
    }
    return signal ? untilAborted(slot, signal) : slot;
  }

  ask() {
    const asks = this.asks;
    this.asks = new Map();
    this.asking = false;
    const batch = [...asks.values()].map(({ key, n, interval, burst, tat, within }) => (within === undefined ? { key, n, interval, burst, tat } : { key, n, interval, burst, tat, within }));
    this.bounded(() => this.store.pace(batch)).then(
      (slots) => {
        if (!Array.isArray(slots)) this.error(new TypeError(`health.store.pace resolved to ${got(slots)}, not an array of slots per ask`), "pace");
        // A slot is an instant; one more than a day away is no answer (the call paces on its own).
        const latest = Date.now() + 86_400_000;
        const slot = (v) => (instant(v) > 0 && v < latest ? v : undefined);
        let i = 0;
        for (const { answers } of asks.values()) {
          const given = Array.isArray(slots) ? slots[i++] : undefined;
          answers.forEach((resolve, j) => resolve(Array.isArray(given) ? slot(given[j]) : undefined));
        }
      },
      (e) => {
        this.error(e, "pace");
        this.paceDownUntil = Date.now() + this.refreshMs;
        for (const { answers } of asks.values()) answers.forEach((resolve) => resolve(undefined));
      },
    );
  }

  /** Resolves when what was told so far is written and a read under way is done, each within
   * `timeoutMs` (a Worker hands it to ctx.waitUntil). */
  async flush() {
    await this.batch;
    const now = Date.now();
    const live = [...this.writes].filter(([, at]) => now - at <= this.timeoutMs).map(([w]) => w);
    if (this.reading !== undefined && now - this.readAt <= this.timeoutMs) live.push(this.reading);
    await Promise.all(live);
  }
}

/** Before a call: the client's health link's bounded wait, if any (see `HealthLink.before`). */
export const healthBefore = (options, names) => options.health?.before(names.ids.map((id) => names.keyNames[id]));

export const healthTell = (options, flat) => options.health?.tell(flat);

/** A send slot from the client's shared bucket (see `HealthLink.pace`). */
export const healthPace = (options, key, interval, burst, tat, within, signal) => options.health?.pace(key, interval, burst, tat, within, signal);

