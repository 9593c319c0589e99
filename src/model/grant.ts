// A webhook's limits shared by the dispatchers that send to it: each dispatcher leases a share
// of max_in_flight (slots) and of rate_limit_per_s (webhooks.dispatcher_grants), and the
// shares never add up to more than the limits. This file is the arithmetic: the fair split,
// what a dispatcher may take now, when it should go back to the database. Pure:
// dispatch/grants.ts reads and writes the rows under the webhook's lock.
import { requestSpacingMs } from "./rate-limit";

/** A share that has just grown is kept this long before its odd slot moves to a waiting dispatcher. */
export const GRANT_QUANTUM_MS = 500;

/**
 * How long a grown share is kept for a webhook with these limits: with a rate limit, two of
 * its cooling periods, since each move of a rate unit leaves it unused for up to a tick after
 * the cooling, and slots and rate move together.
 */
export function quantumMs(limits: Limits): number {
  return limits.ratePerS === null ? GRANT_QUANTUM_MS : Math.max(GRANT_QUANTUM_MS, 2 * coolingMs(limits.ratePerS));
}
/** An idle dispatcher keeps its share this long while nobody else wants one (then gives it back). */
export const GRANT_IDLE_MS = 5000;

export interface Limits {
  maxInFlight: number;
  /** null: no rate limit. */
  ratePerS: number | null;
}

/** One dispatcher's row for one webhook, as stored; grantedAt in ms of the database's clock. */
export interface GrantRow {
  dispatcher: string;
  slots: number;
  /** null: written while the webhook had no rate limit. */
  rate: number | null;
  wants: number;
  grantedAt: number;
}

export interface Share {
  slots: number;
  /** null: no rate limit. */
  rate: number | null;
}

/** What a dispatcher holds for one webhook, as it sends. */
export interface LocalGrant {
  /** Its row exists (as far as it knows). */
  held: boolean;
  /** Requests it may keep open now. */
  slots: number;
  /** Requests per second it may start now; null: no limit. */
  rate: number | null;
  /** What its row says: at least `slots` (more while requests above a lowered share finish). */
  dbSlots: number;
  /** What its row says: at least `rate` (more while a lowered rate cools down). */
  dbRate: number | null;
  /** Local clock: its row keeps dbRate until then. */
  coolUntil: number;
}

export const NO_GRANT: LocalGrant = { held: false, slots: 0, rate: 0, dbSlots: 0, dbRate: 0, coolUntil: 0 };

const EPS = 1e-9;

/**
 * A rate is split in whole requests per second (or, below one per second, not at all): shares
 * of whole units started evenly never put more than the limit's ceiling into any one-second
 * window, which fractional shares (three dispatchers at 2/3 each) would.
 */
export function rateUnits(ratePerS: number): { count: number; size: number } {
  return ratePerS >= 1 ? { count: Math.floor(ratePerS + EPS), size: 1 } : { count: 1, size: ratePerS };
}

/** How many of the rate's units a stored share counts as (unknown: all of them). */
function unitsOf(rate: number | null, ratePerS: number): number {
  const { count, size } = rateUnits(ratePerS);
  if (rate === null || rate >= ratePerS - EPS) return count;
  return Math.min(count, Math.floor(rate / size + EPS));
}

/**
 * How long after its last request a dispatcher that lowers its rate keeps the old share in
 * its row: one unit's spacing (at least a second), so that whoever takes the freed part cannot
 * start a request inside a window that its last requests at the old rate still fill.
 */
export function coolingMs(ratePerS: number): number {
  return Math.max(1000, requestSpacingMs(rateUnits(ratePerS).size));
}

interface Claimant {
  id: string;
  wants: number;
  holds: number;
  grantedAt: number;
}

/**
 * Max-min fair split of `total` whole units: equal rounds, each capped at what a claimant
 * wants; the odd units left over go first to claimants that hold them and got them less than
 * `quantum` ms ago, then to the longest waiting (oldest grantedAt), so they rotate.
 */
export function fairSplit(total: number, claimants: Claimant[], now: number, quantum = GRANT_QUANTUM_MS): Map<string, number> {
  const out = new Map(claimants.map((c) => [c.id, 0]));
  const got = (c: Claimant): number => out.get(c.id) ?? 0;
  let left = Math.max(0, Math.floor(total));
  for (;;) {
    const open = claimants.filter((c) => got(c) < c.wants);
    if (open.length === 0 || left === 0) return out;
    const each = Math.floor(left / open.length);
    if (each === 0) break;
    for (const c of open) {
      const g = Math.min(each, c.wants - got(c));
      out.set(c.id, got(c) + g);
      left -= g;
    }
  }
  const keeps = (c: Claimant): boolean => c.holds > got(c) && now - c.grantedAt < quantum;
  const order = claimants
    .filter((c) => got(c) < c.wants)
    .sort((a, b) => Number(keeps(b)) - Number(keeps(a)) || a.grantedAt - b.grantedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const c of order) {
    if (left === 0) break;
    out.set(c.id, got(c) + 1);
    left--;
  }
  return out;
}

/**
 * Each dispatcher's fair share of a webhook's limits. One dispatcher alone wanting to send
 * gets all of them (even beyond what it wants now, so that it rarely asks again); several
 * split the slots by what they want and the rate among those that get slots.
 */
export function fairShares(limits: Limits, rows: GrantRow[], now: number): Map<string, Share> {
  const out = new Map<string, Share>();
  const none: Share = { slots: 0, rate: limits.ratePerS === null ? null : 0 };
  const wanting = rows.filter((r) => r.wants > 0);
  for (const r of rows) out.set(r.dispatcher, none);
  if (wanting.length === 1 && wanting[0]) {
    out.set(wanting[0].dispatcher, { slots: limits.maxInFlight, rate: limits.ratePerS });
    return out;
  }
  if (wanting.length === 0) return out;
  const quantum = quantumMs(limits);
  const slots = fairSplit(
    limits.maxInFlight,
    wanting.map((r) => ({ id: r.dispatcher, wants: Math.min(r.wants, limits.maxInFlight), holds: r.slots, grantedAt: r.grantedAt })),
    now,
    quantum,
  );
  const R = limits.ratePerS;
  const rates = new Map<string, number>();
  if (R !== null) {
    const { count, size } = rateUnits(R);
    const units = fairSplit(
      count,
      wanting
        .filter((r) => (slots.get(r.dispatcher) ?? 0) > 0)
        .map((r) => ({ id: r.dispatcher, wants: count, holds: unitsOf(r.rate, R), grantedAt: r.grantedAt })),
      now,
      quantum,
    );
    for (const [id, u] of units) rates.set(id, u * size);
  }
  for (const r of wanting) out.set(r.dispatcher, { slots: slots.get(r.dispatcher) ?? 0, rate: R === null ? null : (rates.get(r.dispatcher) ?? 0) });
  return out;
}

/** What a dispatcher may hold now towards `target`: never more than the others leave free. */
export function allowedShare(limits: Limits, target: Share, others: GrantRow[]): Share {
  const usedSlots = others.reduce((n, o) => n + o.slots, 0);
  const slots = Math.max(0, Math.min(target.slots, limits.maxInFlight - usedSlots));
  const R = limits.ratePerS;
  if (R === null) return { slots, rate: null };
  // A row written while there was no limit counts as holding all of it until it is renewed.
  const usedRate = others.reduce((n, o) => n + (o.rate ?? R), 0);
  const want = target.rate ?? R;
  const free = R - usedRate;
  // (Sums of shares carry float noise: what is free up to it counts as the whole target.)
  return { slots, rate: free >= want - R * 1e-9 ? want : Math.max(0, free) };
}

const more = (a: number | null, b: number | null): boolean => (a === null ? b !== null : b !== null && a > b + EPS);

/** What a dispatcher finds when it looks at a webhook's rows (its own left out of `others`). */
export interface Situation {
  limits: Limits;
  others: GrantRow[];
  mine: LocalGrant;
  /** Its own row as stored, if any (grantedAt for the fair split). */
  row: GrantRow | undefined;
  /** Requests it could keep open now (queued and in flight), up to max_in_flight. */
  wants: number;
  inFlight: number;
  /** How long its lane has had nothing queued or in flight (0: busy). */
  idleMs: number;
  /** The database's clock, ms. */
  now: number;
  /** The local clock, ms (cooling). */
  localNow: number;
  /** When its lane last started a request, local clock (-Infinity: never). */
  lastStartAt: number;
}

/** True when a dispatcher should renew its grant (take, give back, or let go) under the lock. */
export function needsRenewal(s: Situation): boolean {
  const { limits, others, mine } = s;
  if (!mine.held) return s.wants > 0;
  const contended = others.some((o) => o.wants > 0);
  if (s.wants === 0 && s.inFlight === 0) return contended || s.idleMs >= GRANT_IDLE_MS;
  // Owed: what the row still holds above the share in use.
  if (mine.dbSlots > mine.slots && s.inFlight <= mine.slots) return true;
  if (more(mine.dbRate, mine.rate) && s.localNow >= mine.coolUntil) return true;
  const me: GrantRow = { dispatcher: "", slots: mine.dbSlots, rate: mine.dbRate, wants: s.wants, grantedAt: s.row?.grantedAt ?? s.now };
  const target = fairShares(limits, [...others, me], s.now).get("") ?? { slots: 0, rate: 0 };
  // Give back what is above the fair share.
  if (mine.slots > target.slots || more(mine.rate, target.rate)) return true;
  // Take what is free up to it.
  const allowed = allowedShare(limits, target, others);
  if (allowed.slots > mine.slots && s.wants > mine.slots) return true;
  return more(allowed.rate, mine.rate);
}

/** A renewal: the row to write (null: delete it) and the grant the dispatcher then holds. */
export interface Renewal {
  row: { slots: number; rate: number | null; wants: number; raised: boolean } | null;
  grant: LocalGrant;
}

/**
 * Renews a grant under the webhook's lock, from the rows as they are (`row`: its own). No
 * request starts meanwhile, so the row can keep exactly what is still open above the new
 * share (given back once it finishes). A lowered rate keeps the old share in the row until
 * coolingMs after the last request; `limits` null: the webhook is gone.
 */
export function renew(s: Omit<Situation, "limits" | "idleMs"> & { limits: Limits | null }): Renewal {
  const { limits, others, mine, row } = s;
  if (limits === null) return { row: null, grant: NO_GRANT };
  const me: GrantRow = { dispatcher: "", slots: row?.slots ?? 0, rate: row?.rate ?? 0, wants: s.wants, grantedAt: row?.grantedAt ?? s.now };
  const target = s.wants === 0 ? { slots: 0, rate: limits.ratePerS === null ? null : 0 } : (fairShares(limits, [...others, me], s.now).get("") ?? { slots: 0, rate: 0 });
  const allowed = allowedShare(limits, target, others);
  const dbSlots = Math.max(allowed.slots, s.inFlight);
  let rate = allowed.rate;
  let dbRate = rate;
  let coolUntil = mine.coolUntil;
  if (limits.ratePerS !== null && rate !== null) {
    // What the row holds now (written without a limit: all of it); the share in use may have
    // started requests at up to its rate (unlimited: null).
    const wasDb = row ? (row.rate ?? limits.ratePerS) : 0;
    if (rate < (mine.rate ?? Infinity) - EPS) coolUntil = Math.max(coolUntil, s.lastStartAt + coolingMs(limits.ratePerS));
    if (s.localNow < coolUntil) dbRate = Math.max(rate, wasDb);
  } else rate = dbRate = null;
  const raised = row === undefined || allowed.slots > row.slots || (rate !== null && row.rate !== null && rate > row.rate + EPS);
  const grant: LocalGrant = { held: true, slots: allowed.slots, rate, dbSlots, dbRate, coolUntil };
  if (s.wants === 0 && dbSlots === 0 && (dbRate === null || dbRate === 0)) return { row: null, grant: NO_GRANT };
  return { row: { slots: dbSlots, rate: dbRate, wants: s.wants, raised }, grant };
}
