// Receiving one inbound request: find its source, verify it, and store it (relaying it in the
// same transaction when the source relays). The caller answers 200 only once store() has
// returned, i.e. after COMMIT: a crash before that leaves the sender without a 200, so it
// sends again, and the dedupe key keeps the retry from storing a second row.
import type { Connection, Queryable } from "../db/connection";
import {
  dedupeKey,
  effectiveDedupe,
  eventName,
  parseBody,
  resolveTenant,
  slackChallenge,
  storedHeaders,
  type SourceRow,
} from "../model/inbound";
import { verifyRequest } from "../model/inbound-verify";

/** A source as the receive path reads it (live and enabled only). */
export async function findReceivingSource(conn: Connection, slug: string): Promise<SourceRow | null> {
  const rows = await conn.sql<SourceRow[]>`
    select id, tenant, slug, name, enabled, verify, secrets, hmac, key_header, tolerance_s, dedupe,
           allowed_tenants, max_body_bytes, rate_limit_per_s, relay_prefix, created_at, updated_at
      from webhooks.inbound_sources
     where slug = ${slug} and deleted_at is null and enabled`;
  return rows[0] ?? null;
}

/** How long a source read by the receive path is used before it is read again. */
export const SOURCE_CACHE_MS = 1000;

const caches = new Set<SourceCache>();

/**
 * Sources as the receive path reads them, each for up to SOURCE_CACHE_MS: one query less per
 * request. A change made in this process (API, admin) takes effect at once (the service calls
 * forgetInboundSource); one made by another process within a second. Unknown slugs are not
 * cached, so the cache holds at most one entry per source.
 */
export class SourceCache {
  private readonly entries = new Map<string, { row: SourceRow; at: number }>();
  constructor(private readonly conn: Connection, private readonly ttlMs = SOURCE_CACHE_MS) {
    caches.add(this);
  }
  async get(slug: string, nowMs: number): Promise<SourceRow | null> {
    const hit = this.entries.get(slug);
    if (hit !== undefined && nowMs - hit.at < this.ttlMs) return hit.row;
    const row = await findReceivingSource(this.conn, slug);
    if (row === null) this.entries.delete(slug);
    else this.entries.set(slug, { row, at: nowMs });
    return row;
  }
  forget(slug: string): void {
    this.entries.delete(slug);
  }
  close(): void {
    this.entries.clear();
    caches.delete(this);
  }
}

/** Drops a source from every receive cache of this process (after it changed). */
export function forgetInboundSource(...slugs: string[]): void {
  for (const c of caches) for (const slug of slugs) c.forget(slug);
}

export interface InboundRequest {
  /** From /in/<slug>/<event_name>, if the path had one. */
  pathEventName?: string | undefined;
  /** Lower-cased names, one string each. */
  headers: Record<string, string>;
  body: Buffer;
  now: Date;
}

export type ReceiveOutcome =
  | { result: "stored"; id: string }
  | { result: "duplicate"; id: string }
  | { result: "challenge"; challenge: string }
  | { result: "unverified"; reason: string };

interface Stored {
  id: string;
  duplicate: boolean;
}

/** The row, or the row the sender's earlier request left under the same key. */
async function insertEvent(on: Queryable, row: {
  source_id: string;
  tenant: string | null;
  event_name: string | null;
  headers: string;
  body: Buffer;
  payload: string | null;
  dedupe_key: string | null;
}): Promise<Stored | null> {
  // Hand-written: the hot path of every inbound request, one round trip. The JSON goes in as
  // text and Postgres casts it (its numbers exact); a jsonb parameter would be re-encoded.
  const rows = await on<{ id: string; duplicate: boolean }[]>`
    with ins as (
      insert into webhooks.inbound_events (source_id, tenant, event_name, headers, body, payload, dedupe_key)
      values (${row.source_id}::uuid, ${row.tenant}, ${row.event_name}, ${row.headers}::text::jsonb, ${row.body},
              ${row.payload}::text::jsonb, ${row.dedupe_key})
      on conflict (source_id, dedupe_key) do nothing
      returning id
    )
    select id::text, false as duplicate from ins
    union all
    select id::text, true from webhooks.inbound_events
     where source_id = ${row.source_id}::uuid and dedupe_key = ${row.dedupe_key} and not exists (select 1 from ins)`;
  return rows[0] ?? null;
}

/** Finds the row a concurrent duplicate committed after this statement's snapshot was taken. */
async function existing(on: Queryable, sourceId: string, key: string): Promise<Stored | null> {
  const rows = await on<{ id: string }[]>`
    select id::text from webhooks.inbound_events where source_id = ${sourceId}::uuid and dedupe_key = ${key}`;
  return rows[0] ? { id: rows[0].id, duplicate: true } : null;
}

/** A value Postgres refused (class 22: data exception; 54: too deep, too complex). */
function isDataError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("54"));
}

/**
 * Verifies and stores the request. Throws only when the database fails (the caller answers
 * 503 so the sender retries); every other outcome is a value.
 */
export async function receive(conn: Connection, source: SourceRow, req: InboundRequest): Promise<ReceiveOutcome> {
  const verdict = verifyRequest(source, req.headers, req.body, req.now);
  if (!verdict.ok) return { result: "unverified", reason: verdict.reason };
  const tenant = resolveTenant(source, req.headers);
  if (!tenant.ok) return { result: "unverified", reason: tenant.reason };

  const parsed = parseBody(req.body);
  const challenge = slackChallenge(source.verify, parsed.value);
  if (challenge !== null) return { result: "challenge", challenge };

  const row: {
    source_id: string;
    tenant: string | null;
    event_name: string | null;
    headers: string;
    body: Buffer;
    payload: string | null;
    dedupe_key: string | null;
  } = {
    source_id: source.id,
    tenant: tenant.tenant,
    event_name: eventName(source.verify, req.pathEventName, req.headers, parsed.value),
    headers: JSON.stringify(storedHeaders(req.headers, source.key_header)),
    body: req.body,
    payload: parsed.jsonText,
    dedupe_key: dedupeKey(effectiveDedupe(source), req.headers, parsed.value),
  };

  const store = async (on: Queryable): Promise<Stored> => {
    let stored = await insertEvent(on, row);
    // ON CONFLICT waited for a concurrent insert of the same key, which committed after this
    // statement's snapshot: its row is visible to the next statement.
    if (stored === null && row.dedupe_key !== null) stored = await existing(on, row.source_id, row.dedupe_key);
    if (stored === null) throw new Error("inbound: the event was neither stored nor found");
    if (source.relay_prefix !== null && !stored.duplicate) {
      await on`select webhooks.inbound_relay(array[${stored.id}::bigint])`;
    }
    return stored;
  };
  // Relaying writes the outbox too: one transaction, so the event and its relay commit together.
  const run = () => (source.relay_prefix === null ? store(conn.sql) : conn.sql.begin((tx) => store(tx)));
  let stored: Stored;
  try {
    stored = await run();
  } catch (e) {
    // JSON that parses here but that jsonb refuses (1e-1000000 overflows numeric): the event is
    // kept with its bytes and no payload rather than lost to a 500 the sender retries forever.
    if (row.payload === null || !isDataError(e)) throw e;
    row.payload = null;
    stored = await run();
  }
  return stored.duplicate ? { result: "duplicate", id: stored.id } : { result: "stored", id: stored.id };
}

/**
 * Per-source token buckets, in this process's memory: with N server processes a source gets up
 * to N times its rate. Capacity: one second's worth (at least one request).
 */
export class InboundRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; rate: number }>();

  /** 0 when the request may pass (a token is taken), else the seconds to wait. */
  take(sourceId: string, ratePerS: number | null, nowMs: number): number {
    if (ratePerS === null) {
      this.buckets.delete(sourceId);
      return 0;
    }
    const capacity = Math.max(1, ratePerS);
    let b = this.buckets.get(sourceId);
    if (b === undefined || b.rate !== ratePerS) {
      b = { tokens: capacity, at: nowMs, rate: ratePerS };
      this.buckets.set(sourceId, b);
    }
    b.tokens = Math.min(capacity, b.tokens + ((nowMs - b.at) / 1000) * ratePerS);
    b.at = nowMs;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / ratePerS));
  }

  /** Gives back the token a request took: one that failed verification spends nothing of the real sender's rate. */
  refund(sourceId: string): void {
    const b = this.buckets.get(sourceId);
    if (b !== undefined) b.tokens = Math.min(Math.max(1, b.rate), b.tokens + 1);
  }
}
