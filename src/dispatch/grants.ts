// Grants: the share of each webhook's limits this dispatcher leases from
// webhooks.dispatcher_grants (sql/0004_dispatcher_grants.sql), so that max_in_flight and
// rate_limit_per_s hold for the webhook across every dispatcher. A lane asks when it first has
// work; alone, it gets the whole limit and keeps it (no query per delivery). A tick reads the
// rows of the webhooks this dispatcher sends to: when another dispatcher waits, holders give
// back what is above their fair share and waiters take what is free, each under the webhook's
// row lock (lanes renewing together share one transaction). The split is model/grant.ts; a
// dead dispatcher's rows go with its registry row.
import type { Queryable, Sql } from "../db/connection";
import type { Logger } from "../logger";
import { NO_GRANT, needsRenewal, renew, type GrantRow, type Limits, type LocalGrant } from "../model/grant";

/** How often the rows of contended (or waiting) webhooks are looked at. */
export const GRANT_TICK_MS = 250;

/** What the keeper needs from a lane. */
export interface GrantHolder {
  /** The webhook's id. */
  readonly id: string;
  grant: LocalGrant;
  /** A renewal is under way: the lane starts no request meanwhile. */
  renewing: boolean;
  /** The webhook's limits as the lane last saw them; null before it has seen its settings. */
  limits(): Limits | null;
  /** Requests it could keep open now (queued and in flight), up to max_in_flight. */
  wants(): number;
  readonly inFlight: number;
  /** How long it has had nothing queued or in flight (0: busy). */
  idleMs(now: number): number;
  /** When it last started a request (Date.now(); -Infinity: never). */
  readonly lastStartAt: number;
}

export interface GrantKeeper<H extends GrantHolder> {
  /** Renews this lane's grant soon (once, however often asked meanwhile). */
  renew(h: H): void;
  close(): void;
}

interface StoredRow {
  subscription_id: string;
  dispatcher_id: string;
  slots: number;
  rate_share: number | null;
  wants: number;
  granted_ms: number;
}

const rowOf = (r: StoredRow): GrantRow => ({
  dispatcher: r.dispatcher_id,
  slots: r.slots,
  rate: r.rate_share,
  wants: r.wants,
  grantedAt: r.granted_ms,
});

/** Webhooks renewed in one transaction at most. */
const RENEW_BATCH = 500;

interface Columns {
  ids: string[];
  slots: number[];
  rates: (number | null)[];
  wants: number[];
}
const newColumns = (): Columns => ({ ids: [], slots: [], rates: [], wants: [] });
function push(c: Columns, id: string, row: { slots: number; rate: number | null; wants: number }): void {
  c.ids.push(id);
  c.slots.push(row.slots);
  c.rates.push(row.rate);
  c.wants.push(row.wants);
}

const GRANT_COLUMNS = (sql: Queryable) => sql`
  subscription_id, dispatcher_id, slots, rate_share, wants, extract(epoch from granted_at)::float8 * 1000 as granted_ms`;

export function createGrantKeeper<H extends GrantHolder>(opts: {
  sql: Sql;
  owner: string;
  logger: Logger;
  holders: () => Iterable<H>;
  /** The lane's grant changed (or a renewal ended): it may start requests again. */
  changed: (h: H) => void;
}): GrantKeeper<H> {
  const { sql, owner, logger } = opts;
  let closed = false;
  /** Renewals asked for while one was under way. */
  const again = new Set<H>();
  /** Counts finished renewals, so a tick's read taken before one is not applied after it. */
  const versions = new WeakMap<H, number>();
  /** After a failed renewal, not again before this (a lane asking on every result would spin). */
  const retryAt = new WeakMap<H, number>();

  /** Lanes waiting for the next batch of renewals (each frozen meanwhile: renewing). */
  const pending: H[] = [];
  let scheduled = false;

  const renewNow = (h: H): void => {
    if (closed || Date.now() < (retryAt.get(h) ?? 0)) return;
    if (h.renewing) {
      again.add(h);
      return;
    }
    // Nothing starts from here until the renewal is done, so in-flight can only fall.
    h.renewing = true;
    pending.push(h);
    if (!scheduled) {
      scheduled = true;
      // Lanes asking together (a fanout batch for many webhooks) share one transaction.
      setImmediate(() => void flush());
    }
  };

  const flush = async (): Promise<void> => {
    scheduled = false;
    const batch = pending.splice(0, RENEW_BATCH);
    if (pending.length > 0) {
      scheduled = true;
      setImmediate(() => void flush());
    }
    if (batch.length === 0) return;
    if (closed) {
      // Stopping: nothing more is sent; our rows go with our registry row.
      for (const h of batch) h.renewing = false;
      return;
    }
    const ids = batch.map((h) => h.id);
    await sql
      .begin(async (tx) => {
        // Locked in id order, so two dispatchers' batches cannot deadlock.
        const subs = await tx<{ id: string; max_in_flight: number; rate_limit_per_s: number | null; now_ms: number }[]>`
          select id, max_in_flight, rate_limit_per_s, extract(epoch from now())::float8 * 1000 as now_ms
            from webhooks.subscriptions where id = any(${ids}::uuid[]) and deleted_at is null
           order by id
             for no key update`;
        const stored = await tx<StoredRow[]>`
          select ${GRANT_COLUMNS(tx)} from webhooks.dispatcher_grants where subscription_id = any(${ids}::uuid[])`;
        const live = new Map(subs.map((x) => [x.id, x]));
        const rowsOf = new Map<string, GrantRow[]>();
        for (const r of stored) rowsOf.set(r.subscription_id, [...(rowsOf.get(r.subscription_id) ?? []), rowOf(r)]);
        const dbNow = subs[0]?.now_ms ?? Date.now();
        const grants = new Map<H, LocalGrant>();
        const gone: string[] = [];
        const write = { raised: newColumns(), kept: newColumns() };
        for (const h of batch) {
          const s = live.get(h.id);
          const rows = rowsOf.get(h.id) ?? [];
          const r = renew({
            limits: s ? { maxInFlight: s.max_in_flight, ratePerS: s.rate_limit_per_s } : null,
            others: rows.filter((x) => x.dispatcher !== owner),
            mine: h.grant,
            row: rows.find((x) => x.dispatcher === owner),
            wants: s ? Math.min(h.wants(), s.max_in_flight) : 0,
            inFlight: h.inFlight,
            now: dbNow,
            localNow: Date.now(),
            lastStartAt: h.lastStartAt,
          });
          grants.set(h, r.grant);
          if (r.row === null) gone.push(h.id);
          else if (s) push(r.row.raised ? write.raised : write.kept, h.id, r.row);
        }
        if (gone.length > 0) {
          await tx`delete from webhooks.dispatcher_grants where dispatcher_id = ${owner} and subscription_id = any(${gone}::uuid[])`;
        }
        // Bulk upserts (unnest): one statement for the rows whose share grew (granted_at moves), one for the rest.
        for (const [cols, raised] of [[write.raised, true], [write.kept, false]] as const) {
          if (cols.ids.length === 0) continue;
          await tx`
            insert into webhooks.dispatcher_grants (subscription_id, dispatcher_id, slots, rate_share, wants)
            select sub, ${owner}, slots, rate, wants
              from unnest(${cols.ids}::uuid[], ${cols.slots}::int[], ${cols.rates}::float8[], ${cols.wants}::int[]) as u(sub, slots, rate, wants)
            on conflict (subscription_id, dispatcher_id) do update
               set slots = excluded.slots, rate_share = excluded.rate_share, wants = excluded.wants,
                   granted_at = case when ${raised} then now() else dispatcher_grants.granted_at end`;
        }
        return grants;
      })
      .then(
        (grants) => {
          for (const [h, g] of grants) h.grant = g;
        },
        (e: unknown) => {
          // Committed or not, unknown: start nothing beyond what is open until the tick has looked.
          for (const h of batch) {
            h.grant = { ...h.grant, slots: Math.min(h.grant.slots, h.inFlight) };
            retryAt.set(h, Date.now() + GRANT_TICK_MS);
          }
          if (!closed) logger.debug({ err: e, webhooks: ids.length }, "could not renew grants; trying again shortly");
        },
      );
    for (const h of batch) {
      h.renewing = false;
      versions.set(h, (versions.get(h) ?? 0) + 1);
      opts.changed(h);
      if (again.delete(h)) renewNow(h);
    }
  };

  let ticking = false;
  const tick = async (): Promise<void> => {
    if (ticking || closed) return;
    const now = Date.now();
    const lanes = [...opts.holders()].filter((h) => !h.renewing && (h.grant.held || h.wants() > 0));
    if (lanes.length === 0) return;
    ticking = true;
    try {
      const seen = new Map(lanes.map((h) => [h, versions.get(h) ?? 0]));
      const stored = await sql<(StoredRow & { now_ms: number })[]>`
        select ${GRANT_COLUMNS(sql)}, extract(epoch from now())::float8 * 1000 as now_ms
          from webhooks.dispatcher_grants where subscription_id = any(${lanes.map((h) => h.id)}::uuid[])`;
      const dbNow = stored[0]?.now_ms ?? now;
      const byWebhook = new Map<string, GrantRow[]>();
      for (const r of stored) {
        const list = byWebhook.get(r.subscription_id) ?? [];
        list.push(rowOf(r));
        byWebhook.set(r.subscription_id, list);
      }
      for (const h of lanes) {
        if (h.renewing || versions.get(h) !== seen.get(h)) continue; // renewed since the read
        const rows = byWebhook.get(h.id) ?? [];
        const row = rows.find((r) => r.dispatcher === owner);
        if (h.grant.held && !row) {
          // Our row is gone (we were presumed dead, or the webhook was removed): start
          // nothing more until granted again.
          h.grant = { ...NO_GRANT, dbSlots: h.inFlight };
          opts.changed(h);
        }
        const limits = h.limits();
        if (!limits) continue;
        const localNow = Date.now();
        const situation = {
          limits,
          others: rows.filter((r) => r.dispatcher !== owner),
          mine: h.grant,
          row,
          wants: Math.min(h.wants(), limits.maxInFlight),
          inFlight: h.inFlight,
          idleMs: h.idleMs(localNow),
          now: dbNow,
          localNow,
          lastStartAt: h.lastStartAt,
        };
        if (needsRenewal(situation)) renewNow(h);
      }
    } catch (e) {
      if (!closed) logger.debug({ err: e }, "could not read the grants; trying again shortly");
    } finally {
      ticking = false;
    }
  };

  const timer = setInterval(() => void tick(), GRANT_TICK_MS);
  timer.unref();

  return {
    renew: renewNow,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
