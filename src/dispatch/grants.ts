// Grants: the share of each webhook's limits this dispatcher leases from
// webhooks.dispatcher_grants (sql/0004_dispatcher_grants.sql), so that max_in_flight and
// rate_limit_per_s hold for the webhook across every dispatcher. A lane asks when it first has
// work; alone, it gets the whole limit and keeps it (no query per delivery). A tick reads the
// rows of the webhooks this dispatcher sends to: when another dispatcher waits, holders give
// back what is above their fair share and waiters take what is free, each under the webhook's
// row lock. The split is model/grant.ts; a dead dispatcher's rows go with its registry row.
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

export interface GrantKeeper {
  /** Renews this lane's grant soon (once, however often asked meanwhile). */
  renew(h: GrantHolder): void;
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

const GRANT_COLUMNS = (sql: Queryable) => sql`
  subscription_id, dispatcher_id, slots, rate_share, wants, extract(epoch from granted_at)::float8 * 1000 as granted_ms`;

export function createGrantKeeper<H extends GrantHolder>(opts: {
  sql: Sql;
  owner: string;
  logger: Logger;
  holders: () => Iterable<H>;
  /** The lane's grant changed (or a renewal ended): it may start requests again. */
  changed: (h: H) => void;
}): GrantKeeper {
  const { sql, owner, logger } = opts;
  let closed = false;
  /** Renewals asked for while one was under way. */
  const again = new Set<H>();
  /** Counts finished renewals, so a tick's read taken before one is not applied after it. */
  const versions = new WeakMap<H, number>();
  /** After a failed renewal, not again before this (a lane asking on every result would spin). */
  const retryAt = new WeakMap<H, number>();

  const renewNow = (h: H): void => {
    if (closed || Date.now() < (retryAt.get(h) ?? 0)) return;
    if (h.renewing) {
      again.add(h);
      return;
    }
    h.renewing = true;
    // Nothing starts while this runs, so in-flight stays as read here.
    void sql
      .begin(async (tx) => {
        const [s] = await tx<{ max_in_flight: number; rate_limit_per_s: number | null; now_ms: number }[]>`
          select max_in_flight, rate_limit_per_s, extract(epoch from now())::float8 * 1000 as now_ms
            from webhooks.subscriptions where id = ${h.id} and deleted_at is null
             for no key update`;
        const stored = await tx<StoredRow[]>`
          select ${GRANT_COLUMNS(tx)} from webhooks.dispatcher_grants where subscription_id = ${h.id}`;
        const rows = stored.map(rowOf);
        const r = renew({
          limits: s ? { maxInFlight: s.max_in_flight, ratePerS: s.rate_limit_per_s } : null,
          others: rows.filter((x) => x.dispatcher !== owner),
          mine: h.grant,
          row: rows.find((x) => x.dispatcher === owner),
          wants: s ? Math.min(h.wants(), s.max_in_flight) : 0,
          inFlight: h.inFlight,
          now: s?.now_ms ?? Date.now(),
          localNow: Date.now(),
          lastStartAt: h.lastStartAt,
        });
        if (r.row === null) {
          await tx`delete from webhooks.dispatcher_grants where subscription_id = ${h.id} and dispatcher_id = ${owner}`;
        } else if (s) {
          await tx`
            insert into webhooks.dispatcher_grants (subscription_id, dispatcher_id, slots, rate_share, wants)
            values (${h.id}, ${owner}, ${r.row.slots}, ${r.row.rate}, ${r.row.wants})
            on conflict (subscription_id, dispatcher_id) do update
               set slots = excluded.slots, rate_share = excluded.rate_share, wants = excluded.wants,
                   granted_at = case when ${r.row.raised} then now() else dispatcher_grants.granted_at end`;
        }
        return r.grant;
      })
      .then(
        (grant) => {
          h.grant = grant;
        },
        (e: unknown) => {
          // Committed or not, unknown: start nothing beyond what is open until the tick has looked.
          h.grant = { ...h.grant, slots: Math.min(h.grant.slots, h.inFlight) };
          retryAt.set(h, Date.now() + GRANT_TICK_MS);
          if (!closed) logger.debug({ err: e, webhook: h.id }, "could not renew the grant; trying again shortly");
        },
      )
      .finally(() => {
        h.renewing = false;
        versions.set(h, (versions.get(h) ?? 0) + 1);
        opts.changed(h);
        if (again.delete(h)) renewNow(h);
      });
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
